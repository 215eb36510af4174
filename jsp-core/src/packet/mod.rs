//! Placeholder: the packet layer.
