//! Scraping (work in progress).
