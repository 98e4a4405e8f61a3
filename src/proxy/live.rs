//! The rules in force. [`LiveRules`] holds the compiled [`RuleSet`] every worker reads, swapped
//! whole when SIGHUP reloads the config file (a bad file is refused and the old rules stay).
//! Each worker keeps its own handle ([`WorkerRules`]) and checks a generation counter once per
//! exchange — one relaxed atomic load — fetching the new set only after a reload, so the
//! request path takes no lock and shares no written cache line. An exchange holds the set it
//! started with to its end: in-flight requests, idle keep-alive connections and open tunnels
//! are untouched by a reload; their next request sees the new rules.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError, RulesSource};
use crate::rules::RuleSet;

/// The process's current rules and where they come from.
#[derive(Debug)]
pub struct LiveRules {
    current: ArcSwap<RuleSet>,
    /// Bumped after every swap.
    generation: AtomicU64,
    source: RulesSource,
}

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// The file's rules are in force now.
    Swapped { rules: usize },
    /// Started without `--config`: there is no file to read again.
    NoConfigFile,
}

impl LiveRules {
    pub fn new(cfg: &Config) -> LiveRules {
        LiveRules {
            current: ArcSwap::new(cfg.rules.clone()),
            generation: AtomicU64::new(0),
            source: cfg.rules_source.clone(),
        }
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    /// Read the config file again and put its rules in force; on any error the old rules stay.
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        let Some(rules) = self.source.compile()? else {
            return Ok(Reloaded::NoConfigFile);
        };
        let count = rules.len();
        self.current.store(Arc::new(rules));
        self.generation.fetch_add(1, Ordering::Release);
        Ok(Reloaded::Swapped { rules: count })
    }

    /// A worker's handle on these rules.
    pub fn for_worker(self: &Arc<Self>) -> WorkerRules {
        WorkerRules {
            seen: std::cell::Cell::new(self.generation.load(Ordering::Acquire)),
            cached: RefCell::new(Rc::new(self.current())),
            live: self.clone(),
        }
    }
}

/// One worker's view of the live rules.
#[derive(Debug)]
pub struct WorkerRules {
    live: Arc<LiveRules>,
    seen: std::cell::Cell<u64>,
    // An `Rc` around the shared `Arc`: cloning it once per exchange touches no counter other
    // workers write.
    #[allow(clippy::redundant_allocation)]
    cached: RefCell<Rc<Arc<RuleSet>>>,
}

impl WorkerRules {
    /// The rules for an exchange starting now (kept by the caller until it ends).
    #[allow(clippy::redundant_allocation)] // see `cached`
    pub fn current(&self) -> Rc<Arc<RuleSet>> {
        let now = self.live.generation.load(Ordering::Acquire);
        if now != self.seen.get() {
            *self.cached.borrow_mut() = Rc::new(self.live.current());
            self.seen.set(now);
        }
        self.cached.borrow().clone()
    }
}
