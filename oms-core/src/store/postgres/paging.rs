//! Listing pages (stub: being ported).
