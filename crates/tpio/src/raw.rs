//! The Win32-shaped raw layer (being written).
