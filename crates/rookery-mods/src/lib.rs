//! rookery-mods
