//! The input of every flame-graph algorithm: frames, stacks and stack sets.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One frame of a stack: what the UI shows and colours by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Frame {
    /// Function name; empty for an unsymbolized frame.
    pub function: String,
    /// Mangled or system name of the function, when it differs.
    pub system_name: String,
    /// Source file of the function.
    pub file: String,
    /// Source line of the frame.
    pub line: i64,
    /// Basename of the mapping file, or "".
    pub binary: String,
    /// Build id of the mapping, or "".
    pub build_id: String,
    /// Instruction address; what identifies an unsymbolized frame.
    pub address: u64,
}

impl Frame {
    /// A symbolized frame named `function`, with everything else empty.
    pub fn named(function: impl Into<String>) -> Self {
        Frame {
            function: function.into(),
            ..Frame::default()
        }
    }

    /// Whether the frame has a function name.
    pub fn is_symbolized(&self) -> bool {
        !self.function.is_empty()
    }

    /// The name shown in the UI: the function, or `0x{address:x}` when unsymbolized.
    pub fn display_name(&self) -> Cow<'_, str> {
        if self.is_symbolized() {
            Cow::Borrowed(&self.function)
        } else {
            Cow::Owned(format!("0x{:x}", self.address))
        }
    }

    /// The package the function belongs to, what frames are coloured by.
    ///
    /// Go `crypto/sha256.block` → `crypto/sha256`, `main.(*T).m` → `main`;
    /// C++/Rust `std::vector<int>::push_back` → `std`; Java `java.util.HashMap.get` →
    /// `java.util`. Falls back to the binary (or the function itself when there is no
    /// binary) for names without a package, such as C functions.
    pub fn package(&self) -> &str {
        match package_of(&self.function) {
            Some(package) => package,
            None if self.binary.is_empty() => &self.function,
            None => &self.binary,
        }
    }
}

/// The package prefix of a function name, if it has one.
fn package_of(name: &str) -> Option<&str> {
    // Rust's `<T as Trait>::f` and pointer prefixes.
    let name = name.trim_start_matches(['<', '&', '*']);
    // Drop template/generic arguments and parameter lists, then a C++ return type.
    let head = &name[..name.find(['<', '(', '[']).unwrap_or(name.len())];
    let start = head.rfind(' ').map_or(0, |i| i + 1);
    let head = &head[start..];
    let package = if let Some(i) = head.find("::") {
        &head[..i]
    } else {
        let dir_end = head.rfind('/').map_or(0, |i| i + 1);
        let tail = &head[dir_end..];
        let end = match java_package_end(tail) {
            Some(end) if dir_end == 0 => end,
            _ => tail.find('.')?,
        };
        &head[..dir_end + end]
    };
    (!package.is_empty()).then_some(package)
}

/// For a Java-style `a.b.Class.method`, the byte index where the package `a.b` ends:
/// before the first capitalized segment, when at least two segments precede it.
fn java_package_end(name: &str) -> Option<usize> {
    let mut offset = 0;
    for (index, segment) in name.split('.').enumerate() {
        if segment.starts_with(|c: char| c.is_ascii_uppercase()) {
            return (index >= 2).then(|| offset - 1);
        }
        offset += segment.len() + 1;
    }
    None
}

/// One unique stack of a selection with its value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Stack {
    /// Indexes into [`StackSet::frames`], leaf first like pprof.
    pub frames: Vec<u32>,
    /// The value of the stack (side B of a diff).
    pub value: i64,
    /// The value of comparison side A of a diff; 0 otherwise.
    pub baseline: i64,
}

/// The unique stacks of a selection: what the server streams for `report=stacks`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StackSet {
    /// The frames stacks refer to by index.
    pub frames: Vec<Frame>,
    /// The stacks.
    pub stacks: Vec<Stack>,
}

impl StackSet {
    /// The sum of all stack values.
    pub fn total(&self) -> i64 {
        self.stacks
            .iter()
            .fold(0i64, |sum, s| sum.wrapping_add(s.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(function: &str) -> String {
        Frame {
            function: function.into(),
            binary: "app".into(),
            ..Frame::default()
        }
        .package()
        .to_owned()
    }

    #[test]
    fn display_name_is_function_or_address() {
        assert_eq!(Frame::named("main.main").display_name(), "main.main");
        let unsymbolized = Frame {
            address: 0x4a2f,
            binary: "libc.so.6".into(),
            ..Frame::default()
        };
        assert_eq!(unsymbolized.display_name(), "0x4a2f");
        assert!(!unsymbolized.is_symbolized());
    }

    #[test]
    fn go_packages() {
        assert_eq!(package("crypto/sha256.block"), "crypto/sha256");
        assert_eq!(package("main.(*T).m"), "main");
        assert_eq!(package("sync.(*Mutex).Unlock"), "sync");
        assert_eq!(package("runtime.mallocgc"), "runtime");
        assert_eq!(package("main.T.m"), "main");
        assert_eq!(package("fmt.Fprintf"), "fmt");
        assert_eq!(package("github.com/x/y.(*S).Do.func1"), "github.com/x/y");
        assert_eq!(package("slices.Sort[go.shape.int]"), "slices");
    }

    #[test]
    fn cpp_rust_and_java_packages() {
        assert_eq!(package("std::vector<int>::push_back"), "std");
        assert_eq!(package("void foo::bar(int)"), "foo");
        assert_eq!(package("core::ptr::drop_in_place<u8>"), "core");
        assert_eq!(package("<alloc::vec::Vec<T> as Drop>::drop"), "alloc");
        assert_eq!(package("java.util.HashMap.get"), "java.util");
        assert_eq!(package("com.example.app.Main$1.run"), "com.example.app");
    }

    #[test]
    fn package_falls_back_to_binary() {
        assert_eq!(package("malloc"), "app");
        assert_eq!(package(".weird"), "app");
        assert_eq!(package("::f"), "app");
        assert_eq!(Frame::named("malloc").package(), "malloc");
        let unsymbolized = Frame {
            binary: "libc.so.6".into(),
            ..Frame::default()
        };
        assert_eq!(unsymbolized.package(), "libc.so.6");
    }

    #[test]
    fn serde_round_trip_with_defaults() {
        let set: StackSet = serde_json::from_str(
            r#"{"frames":[{"function":"a"}],"stacks":[{"frames":[0],"value":3}]}"#,
        )
        .unwrap();
        assert_eq!(set.frames[0], Frame::named("a"));
        assert_eq!(set.stacks[0].baseline, 0);
        assert_eq!(set.total(), 3);
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(serde_json::from_str::<StackSet>(&json).unwrap(), set);
    }
}
