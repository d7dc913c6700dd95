//! rookery-core
