//! SKELETON — to be implemented (see the helper brief).

use std::io::{self, BufRead};

/// Converts a capture (JSON Lines of flow events) to a HAR 1.2 document. `warn(line, why)` is
/// called for each line that is skipped.
pub fn convert<R: BufRead>(
    input: R,
    warn: &mut dyn FnMut(usize, &str),
) -> io::Result<serde_json::Value> {
    let _ = (input, warn);
    todo!()
}
