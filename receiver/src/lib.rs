//! gapsync receiver library.
