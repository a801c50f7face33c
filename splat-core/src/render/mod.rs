//! The CPU reference renderer: exact 3DGS image formation, forward and backward.
