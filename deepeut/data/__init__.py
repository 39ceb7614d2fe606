"""The labeled dataset (ground floor): the store of labels keyed by content hash, the Label record, shipped
datasets (demo and campaign) and their pack/unpack."""
