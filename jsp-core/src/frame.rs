//! Placeholder: the frame codec.
