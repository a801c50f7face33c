//! SOGS compression of trained Gaussians to PlayCanvas's SOG format (v2 write, v1/v2 read).
