//! Packager.
