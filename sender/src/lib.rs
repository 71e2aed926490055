//! gapsync sender library.
