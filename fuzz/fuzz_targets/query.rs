//! The query language as users type it (`<type>{<matchers>}`), label selectors alone, and
//! profile types: parsing never panics, and whatever parses prints back to text that parses
//! to the same value (the UI and the URLs rely on that round trip).

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::{
    labels::Selector,
    query::{ProfileType, Query, parse_matchers},
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(query) = text.parse::<Query>() {
        let printed = query.to_string();
        let again: Query = printed
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(query, again, "{text:?} → {printed:?}");
    }
    if let Ok(selector) = parse_matchers(text) {
        let printed = selector.to_string();
        let again: Selector = printed
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(selector, again, "{text:?} → {printed:?}");
    }
    if let Ok(ty) = text.parse::<ProfileType>() {
        let printed = ty.to_string();
        assert_eq!(
            Ok(ty),
            printed.parse::<ProfileType>().map_err(|_| ()),
            "{text:?}"
        );
    }
});
