//! rookery-xml
