//! Relative paths in a manifest: validation and the canonical entry order.
//!
//! Invariant: a path that passes [`validate_path`] is a non-empty sequence of 1 to
//! [`MAX_DEPTH`] components joined by `/`, none empty, `.` or `..`, none longer than
//! [`MAX_COMPONENT_LEN`] bytes, the whole at most [`MAX_PATH_LEN`] bytes, with no NUL, no control
//! character (Unicode category Cc) and no backslash. Joined below a destination directory, such a
//! path can therefore never name anything outside it on Unix or through `\` on Windows.
//!
//! Drivers on Windows must still refuse components that Windows treats specially (drive prefixes
//! such as `C:`, reserved device names such as `CON`, trailing dots or spaces): they are valid
//! file names elsewhere, so the manifest allows them.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use core::cmp::Ordering;
use core::fmt;

/// Longest path, in bytes of UTF-8.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest path component, in bytes (the common file-name limit).
pub const MAX_COMPONENT_LEN: usize = 255;
/// Most components in a path.
pub const MAX_DEPTH: usize = 128;

/// Which path rule a path breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The path is empty.
    Empty,
    /// The path is longer than [`MAX_PATH_LEN`] bytes.
    TooLong,
    /// The path starts with `/`.
    Absolute,
    /// The path has an empty component (`a//b`, or a trailing `/`).
    EmptyComponent,
    /// A component is `.` or `..`.
    DotComponent,
    /// A component is longer than [`MAX_COMPONENT_LEN`] bytes.
    ComponentTooLong,
    /// More than [`MAX_DEPTH`] components.
    TooDeep,
    /// The path contains a NUL character.
    Nul,
    /// The path contains a control character.
    ControlCharacter,
    /// The path contains a backslash, a separator on Windows.
    Backslash,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty path",
            Self::TooLong => "longer than 4096 bytes",
            Self::Absolute => "absolute path",
            Self::EmptyComponent => "empty component",
            Self::DotComponent => "`.` or `..` component",
            Self::ComponentTooLong => "component longer than 255 bytes",
            Self::TooDeep => "more than 128 components",
            Self::Nul => "NUL character",
            Self::ControlCharacter => "control character",
            Self::Backslash => "backslash",
        })
    }
}

/// Checks `path` against the rules in the module documentation.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathError::Absolute);
    }
    for c in path.chars() {
        match c {
            '\0' => return Err(PathError::Nul),
            '\\' => return Err(PathError::Backslash),
            c if c.is_control() => return Err(PathError::ControlCharacter),
            _ => {}
        }
    }
    let mut depth = 0usize;
    for component in path.split('/') {
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        match component {
            "" => return Err(PathError::EmptyComponent),
            "." | ".." => return Err(PathError::DotComponent),
            c if c.len() > MAX_COMPONENT_LEN => return Err(PathError::ComponentTooLong),
            _ => {}
        }
    }
    Ok(())
}

/// The canonical entry order: component by component, each compared as bytes. A directory
/// therefore comes right before everything below it (`a`, `a/b`, `a b`), which is what the
/// conflict check relies on.
pub(crate) fn cmp_paths(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Whether `ancestor` is a proper ancestor of `path` (`a` of `a/b`, not of `ab`).
pub(crate) fn is_ancestor(ancestor: &str, path: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths_pass_and_invalid_ones_name_their_rule() {
        for ok in [
            "a",
            "a/b",
            "dir/file.txt",
            "ü/ñ",
            "a b/c:d",
            ".hidden",
            "a..b",
        ] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        let long_component = "x".repeat(256);
        let long_path = ["y"; 2049].join("/");
        let deep = ["z"; 129].join("/");
        let cases: &[(&str, PathError)] = &[
            ("", PathError::Empty),
            ("/etc/passwd", PathError::Absolute),
            ("a//b", PathError::EmptyComponent),
            ("a/", PathError::EmptyComponent),
            ("..", PathError::DotComponent),
            ("a/../../b", PathError::DotComponent),
            ("./a", PathError::DotComponent),
            ("a\0b", PathError::Nul),
            ("a\nb", PathError::ControlCharacter),
            ("a\u{7f}", PathError::ControlCharacter),
            ("a\u{85}", PathError::ControlCharacter),
            ("a\\..\\b", PathError::Backslash),
            (&long_component, PathError::ComponentTooLong),
            (&long_path, PathError::TooLong),
            (&deep, PathError::TooDeep),
        ];
        for (path, err) in cases {
            assert_eq!(validate_path(path), Err(*err), "{path:?}");
        }
    }

    #[test]
    fn component_order_puts_a_directory_right_before_its_contents() {
        let mut v = vec!["a b", "a/b", "a", "a/b/c", "a-c", "b"];
        v.sort_by(|x, y| cmp_paths(x, y));
        assert_eq!(v, ["a", "a/b", "a/b/c", "a b", "a-c", "b"]);
        assert!(is_ancestor("a", "a/b"));
        assert!(!is_ancestor("a", "ab"));
        assert!(!is_ancestor("a", "a"));
    }
}
