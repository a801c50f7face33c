//! COLMAP sparse models (cameras, images, points3D) in binary and text form.
