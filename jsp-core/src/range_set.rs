//! Placeholder: a set of disjoint integer ranges.
