//! The host index: which rules can possibly match a host, without testing every rule. Each rule
//! is filed once, by the shape of its host pattern: an exact host under that host, `*.suffix`
//! under the suffix, `*` and no host key in a list every lookup returns, and the other globs
//! and the regexes in a list guarded by one `RegexSet` of all their patterns (globs translated
//! to anchored regexes): a host gets those candidates only if the set matches it, so a thousand
//! regex rules cost one set search per request. A lookup yields candidate rule indices in file
//! order by merging a few sorted lists; the caller still tests each candidate's full condition.
//! Nothing is allocated unless a host hits more than [`MERGE_INLINE`] lists.

use foldhash::HashMap;

use regex::{RegexSet, RegexSetBuilder};

use super::pattern::HostPattern;

/// Lists a [`Merge`] holds without allocating.
pub const MERGE_INLINE: usize = 8;
/// Compiled size limit of the prefilter set; beyond it the patterned rules are tested one by
/// one (correct, only slower).
pub const MAX_REGEX_SET_SIZE: usize = 64 << 20;

/// Rule indices (into the rule set's file-ordered list) filed by host pattern shape.
#[derive(Debug, Default)]
pub(super) struct HostIndex {
    exact: HashMap<Box<str>, Vec<u32>>,
    suffix: HashMap<Box<str>, Vec<u32>>,
    /// No host key (or `*`) and no method key.
    any: Vec<u32>,
    /// No host key (or `*`) but a method key: filed under each of its methods, so a path rule
    /// for POST costs a GET nothing.
    any_by_method: Vec<(Box<str>, Vec<u32>)>,
    /// Other globs and regexes, with their prefilter sources until `finish`.
    patterned: Vec<u32>,
    sources: Vec<String>,
    /// Matches a host if any patterned rule's host pattern may (`None`: no set, test them all).
    prefilter: Option<RegexSet>,
}

impl HostIndex {
    /// Files rule `index` (host pattern, accepted methods: empty = any); indices must be
    /// inserted in increasing order.
    pub(super) fn insert(&mut self, index: u32, host: Option<&HostPattern>, methods: &[String]) {
        let hostless = matches!(host, None | Some(HostPattern::Any));
        if hostless && !methods.is_empty() {
            for m in methods {
                match self
                    .any_by_method
                    .iter_mut()
                    .find(|(name, _)| **name == **m)
                {
                    Some((_, list)) => list.push(index),
                    None => self.any_by_method.push((m.as_str().into(), vec![index])),
                }
            }
            return;
        }
        let list = match host {
            Some(HostPattern::Exact(h)) => self.exact.entry(h.clone()).or_default(),
            Some(HostPattern::Suffix(s)) => self.suffix.entry(s.clone()).or_default(),
            Some(p) => match p.regex_source() {
                Some(source) => {
                    self.sources.push(source.to_owned());
                    &mut self.patterned
                }
                None => &mut self.any,
            },
            None => &mut self.any,
        };
        list.push(index);
    }

    /// Builds the prefilter once every rule is filed.
    pub(super) fn finish(&mut self) {
        let sources = std::mem::take(&mut self.sources);
        if sources.is_empty() {
            return;
        }
        self.prefilter = RegexSetBuilder::new(sources)
            .case_insensitive(true)
            .dot_matches_new_line(true)
            .size_limit(MAX_REGEX_SET_SIZE)
            .build()
            .ok();
    }

    /// Adds the lists of rules that may match `host` or `sni` (normalized) and `method` (a
    /// request's; `None` at CONNECT, where rules have no methods) to `merge`.
    pub(super) fn lookup<'a>(
        &'a self,
        host: &str,
        sni: Option<&str>,
        method: Option<&str>,
        merge: &mut Merge<'a>,
    ) {
        for name in std::iter::once(host).chain(sni) {
            if !self.exact.is_empty()
                && let Some(list) = self.exact.get(name)
            {
                merge.push(list);
            }
            if !self.suffix.is_empty() {
                for (i, _) in name.match_indices('.') {
                    if let Some(list) = name.get(i + 1..).and_then(|s| self.suffix.get(s)) {
                        merge.push(list);
                    }
                }
            }
        }
        merge.push(&self.any);
        if let Some(method) = method
            && let Some((_, list)) = self.any_by_method.iter().find(|(m, _)| **m == *method)
        {
            merge.push(list);
        }
        if !self.patterned.is_empty() {
            let may = match &self.prefilter {
                Some(set) => std::iter::once(host).chain(sni).any(|n| set.is_match(n)),
                None => true,
            };
            if may {
                merge.push(&self.patterned);
            }
        }
    }
}

/// A k-way merge of sorted index lists, yielding each index once in increasing order.
#[derive(Debug)]
pub(super) struct Merge<'a> {
    inline: [&'a [u32]; MERGE_INLINE],
    len: usize,
    /// Used instead of `inline` once more than `MERGE_INLINE` lists were pushed.
    spill: Vec<&'a [u32]>,
    last: Option<u32>,
}

impl Default for Merge<'_> {
    fn default() -> Self {
        Merge {
            inline: [&[]; MERGE_INLINE],
            len: 0,
            spill: Vec::new(),
            last: None,
        }
    }
}

impl<'a> Merge<'a> {
    /// Adds a sorted list (empty lists are skipped).
    pub(super) fn push(&mut self, list: &'a [u32]) {
        if list.is_empty() {
            return;
        }
        if self.spill.is_empty()
            && let Some(slot) = self.inline.get_mut(self.len)
        {
            *slot = list;
            self.len += 1;
            return;
        }
        if self.spill.is_empty() {
            self.spill.extend_from_slice(&self.inline[..self.len]);
        }
        self.spill.push(list);
    }

    fn lists(&mut self) -> &mut [&'a [u32]] {
        if self.spill.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        }
    }
}

impl Iterator for Merge<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        // One list (the usual case: host-less rules, or one host's rules) is already in order
        // and has no duplicates.
        if self.spill.is_empty() && self.len == 1 {
            let (&head, rest) = self.inline[0].split_first()?;
            self.inline[0] = rest;
            return Some(head);
        }
        loop {
            let last = self.last;
            let lists = self.lists();
            let mut best: Option<(usize, u32)> = None;
            for (k, list) in lists.iter().enumerate() {
                if let Some(&head) = list.first()
                    && best.is_none_or(|(_, b)| head < b)
                {
                    best = Some((k, head));
                }
            }
            let (k, head) = best?;
            if let Some(list) = lists.get_mut(k) {
                *list = list.get(1..).unwrap_or_default();
            }
            if last != Some(head) {
                self.last = Some(head);
                return Some(head);
            }
        }
    }
}
