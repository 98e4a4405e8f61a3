//! The raw form of a `[[rule]]` table: every key and value as written, with the byte span it
//! came from. A rule is deserialized without interpreting it, so the TOML reader never fails on
//! a rule's contents; [`RuleSet::compile`](super::RuleSet::compile) checks types and keys
//! itself and can then name the rule, its index and the line of the offending key in every
//! error. [`attach_lines`] turns byte spans into line numbers once the source text is known.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// One `[[rule]]` table as written in the config file (uninterpreted; see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub(super) node: Node,
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    /// Byte range in the source text.
    pub(super) span: Range<usize>,
    /// 1-based line of `span.start`, once [`attach_lines`] has seen the source.
    pub(super) line: Option<u32>,
    pub(super) value: NodeValue,
}

/// Tables keep their structure (and every entry's span); everything else is a plain value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum NodeValue {
    Table(Vec<(String, Node)>),
    Value(toml::Value),
}

impl Node {
    /// "a string", "a table", ... for type errors.
    pub(super) fn type_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Table(_) => "a table",
            NodeValue::Value(v) => match v {
                toml::Value::String(_) => "a string",
                toml::Value::Integer(_) => "an integer",
                toml::Value::Float(_) => "a float",
                toml::Value::Boolean(_) => "a boolean",
                toml::Value::Datetime(_) => "a date-time",
                toml::Value::Array(_) => "an array",
                toml::Value::Table(_) => "a table",
            },
        }
    }

    fn set_lines(&mut self, newlines: &[usize]) {
        self.line = Some(line_of(newlines, self.span.start));
        if let NodeValue::Table(entries) = &mut self.value {
            for (_, node) in entries {
                node.set_lines(newlines);
            }
        }
    }
}

/// The 1-based line holding byte `offset`, given the offsets of every `\n`.
fn line_of(newlines: &[usize], offset: usize) -> u32 {
    let line = newlines.partition_point(|&nl| nl < offset) + 1;
    u32::try_from(line).unwrap_or(u32::MAX)
}

/// Records the line of every key of `specs`, which were read from `source`; call it right
/// after deserializing so that compile errors can name lines. Without it errors name the rule
/// but no line.
pub fn attach_lines(specs: &mut [RuleSpec], source: &str) {
    let newlines: Vec<usize> = memchr::memchr_iter(b'\n', source.as_bytes()).collect();
    for spec in specs {
        spec.node.set_lines(&newlines);
    }
}

/// Reads the `[[rule]]` tables of a TOML document (other top-level keys are ignored) with their
/// lines attached. For tests, benchmarks and tools; the proxy reads rules as part of its
/// config file.
pub fn parse_rules(source: &str) -> Result<Vec<RuleSpec>, toml::de::Error> {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(default)]
        rule: Vec<RuleSpec>,
    }
    let mut doc: Doc = toml::from_str(source)?;
    attach_lines(&mut doc.rule, source);
    Ok(doc.rule)
}

impl<'de> Deserialize<'de> for RuleSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Node::deserialize(d).map(|node| RuleSpec { node })
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(d)?;
        let span = spanned.span();
        Ok(Node {
            span,
            line: None,
            value: spanned.into_inner(),
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Value(toml::Value::Boolean(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Value(toml::Value::Integer(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeValue, E> {
        i64::try_from(v)
            .map(|v| NodeValue::Value(toml::Value::Integer(v)))
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Value(toml::Value::Float(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::Value(toml::Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::Value(toml::Value::String(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<toml::Value>()? {
            items.push(item);
        }
        Ok(NodeValue::Value(toml::Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, node)) = map.next_entry::<String, Node>()? {
            entries.push((key, node));
        }
        Ok(NodeValue::Table(entries))
    }
}
