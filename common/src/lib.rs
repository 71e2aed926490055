//! gapsync common library.
