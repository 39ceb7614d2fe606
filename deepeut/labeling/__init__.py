"""Reference labels (stages reference, label, dataset): GFN2-xTB (tblite) and CP2K labelers behind one
interface, labeler-driven MD, imports of labeled files and the parallel labeling runner."""
