"""Active learning (stage=al, the paper's Methods B): the loop, conformal calibration of the ensemble uncertainty
(Eq. 6) and the selection and screening of frames to relabel."""
