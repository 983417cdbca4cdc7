//! Search spaces (Ray's `tune.uniform`, `tune.choice`, `tune.grid_search`, ...) and the
//! configuration a trial receives, with typed reads.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use super::rng::Rng;

/// A closure drawing a value from the configuration drawn so far (Ray's `tune.sample_from`).
pub type SampleFn = Arc<dyn Fn(&mut Rng, &TrialConfig) -> Json + Send + Sync>;

/// Where one hyperparameter's values come from.
#[derive(Clone)]
#[non_exhaustive]
pub enum Domain {
    /// A float uniform in [low, high).
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Round to a multiple of this, if set.
        q: Option<f64>,
    },
    /// A float whose logarithm is uniform: [low, high), both positive.
    LogUniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Round to a multiple of this, if set.
        q: Option<f64>,
    },
    /// A normal float.
    Randn {
        /// Its mean.
        mean: f64,
        /// Its standard deviation.
        sd: f64,
    },
    /// An integer uniform in [low, high) (with `q`: multiples of q in [low, high], as Ray's
    /// `qrandint`).
    RandInt {
        /// Lower bound.
        low: i64,
        /// Upper bound.
        high: i64,
        /// Round to a multiple of this, if set.
        q: Option<i64>,
    },
    /// An integer whose logarithm is uniform, in [low, high).
    LogRandInt {
        /// Lower bound, at least 1.
        low: i64,
        /// Upper bound.
        high: i64,
    },
    /// One of these, each equally likely.
    Choice(Vec<Json>),
    /// Each of these in turn: the trials are the cartesian product of every grid, repeated
    /// `num_samples` times.
    Grid(Vec<Json>),
    /// Drawn by a closure, after every other value (so it may read them).
    SampleFrom(SampleFn),
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Uniform { low, high, q } => write!(f, "uniform({low}, {high}, q={q:?})"),
            Domain::LogUniform { low, high, q } => {
                write!(f, "loguniform({low}, {high}, q={q:?})")
            }
            Domain::Randn { mean, sd } => write!(f, "randn({mean}, {sd})"),
            Domain::RandInt { low, high, q } => write!(f, "randint({low}, {high}, q={q:?})"),
            Domain::LogRandInt { low, high } => write!(f, "lograndint({low}, {high})"),
            Domain::Choice(v) => write!(f, "choice({v:?})"),
            Domain::Grid(v) => write!(f, "grid_search({v:?})"),
            Domain::SampleFrom(_) => f.write_str("sample_from(..)"),
        }
    }
}

/// A float uniform in [low, high).
pub fn uniform(low: f64, high: f64) -> Domain {
    Domain::Uniform { low, high, q: None }
}

/// A float uniform in [low, high), rounded to a multiple of `q`.
pub fn quniform(low: f64, high: f64, q: f64) -> Domain {
    Domain::Uniform {
        low,
        high,
        q: Some(q),
    }
}

/// A float whose logarithm is uniform in [ln low, ln high).
pub fn loguniform(low: f64, high: f64) -> Domain {
    Domain::LogUniform { low, high, q: None }
}

/// As [`loguniform`], rounded to a multiple of `q`.
pub fn qloguniform(low: f64, high: f64, q: f64) -> Domain {
    Domain::LogUniform {
        low,
        high,
        q: Some(q),
    }
}

/// A normal float with this mean and standard deviation.
pub fn randn(mean: f64, sd: f64) -> Domain {
    Domain::Randn { mean, sd }
}

/// An integer uniform in [low, high).
pub fn randint(low: i64, high: i64) -> Domain {
    Domain::RandInt { low, high, q: None }
}

/// A multiple of `q` uniform in [low, high] (the upper bound included, as Ray's).
pub fn qrandint(low: i64, high: i64, q: i64) -> Domain {
    Domain::RandInt {
        low,
        high,
        q: Some(q),
    }
}

/// An integer whose logarithm is uniform, in [low, high).
pub fn lograndint(low: i64, high: i64) -> Domain {
    Domain::LogRandInt { low, high }
}

/// One of `values`, each equally likely.
pub fn choice<T: Serialize>(values: impl IntoIterator<Item = T>) -> Domain {
    Domain::Choice(values.into_iter().map(to_json).collect())
}

/// Every one of `values` in turn (Ray's `tune.grid_search`).
pub fn grid_search<T: Serialize>(values: impl IntoIterator<Item = T>) -> Domain {
    Domain::Grid(values.into_iter().map(to_json).collect())
}

/// A value drawn by `f` from the generator and the rest of the configuration (Ray's
/// `tune.sample_from`).
pub fn sample_from<T: Serialize>(
    f: impl Fn(&mut Rng, &TrialConfig) -> T + Send + Sync + 'static,
) -> Domain {
    Domain::SampleFrom(Arc::new(move |rng, config| to_json(f(rng, config))))
}

fn to_json<T: Serialize>(value: T) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

/// `a < b`, false when either is NaN.
pub(crate) fn lt(a: f64, b: f64) -> bool {
    a.partial_cmp(&b) == Some(std::cmp::Ordering::Less)
}

fn round_to(x: f64, q: f64) -> f64 {
    (x / q).round() * q
}

impl Domain {
    /// Checks the bounds.
    pub(crate) fn check(&self, name: &str) -> Result<(), String> {
        let bad = |why: &str| Err(format!("`{name}`: {why} ({self:?})"));
        match self {
            Domain::Uniform { low, high, q } if !lt(*low, *high) || q.is_some_and(|q| q <= 0.0) => {
                bad("needs low < high and q > 0")
            }
            Domain::LogUniform { low, high, q }
                if !(lt(0.0, *low) && lt(*low, *high)) || q.is_some_and(|q| q <= 0.0) =>
            {
                bad("needs 0 < low < high and q > 0")
            }
            Domain::Randn { sd, .. } if !lt(0.0, *sd) => bad("needs sd > 0"),
            Domain::RandInt { low, high, q } if low >= high || q.is_some_and(|q| q <= 0) => {
                bad("needs low < high and q > 0")
            }
            Domain::LogRandInt { low, high } if *low < 1 || low >= high => {
                bad("needs 1 <= low < high")
            }
            Domain::Choice(v) | Domain::Grid(v) if v.is_empty() => bad("needs values"),
            _ => Ok(()),
        }
    }

    /// Draws a value (not for grids or closures, which the generator resolves itself).
    pub(crate) fn sample(&self, rng: &mut Rng) -> Json {
        match self {
            Domain::Uniform { low, high, q } => {
                let x = rng.uniform(*low, *high);
                Json::from(q.map_or(x, |q| round_to(x, q)))
            }
            Domain::LogUniform { low, high, q } => {
                let x = rng.uniform(low.ln(), high.ln()).exp();
                Json::from(q.map_or(x, |q| round_to(x, q)))
            }
            Domain::Randn { mean, sd } => Json::from(mean + sd * rng.normal()),
            Domain::RandInt { low, high, q: None } => Json::from(rng.below(*low, *high)),
            Domain::RandInt {
                low,
                high,
                q: Some(q),
            } => {
                let x = rng.below(*low, *high + 1) as f64;
                Json::from((round_to(x, *q as f64) as i64).clamp(*low, *high))
            }
            Domain::LogRandInt { low, high } => {
                let x = rng.uniform((*low as f64).ln(), (*high as f64).ln()).exp();
                Json::from((x.floor() as i64).clamp(*low, *high - 1))
            }
            Domain::Choice(values) | Domain::Grid(values) => {
                values[rng.below(0, values.len() as i64) as usize].clone()
            }
            Domain::SampleFrom(_) => Json::Null,
        }
    }
}

/// One entry of a search space.
#[derive(Clone, Debug)]
enum Entry {
    Fixed(Json),
    Domain(Domain),
    Nested(SearchSpace),
}

/// The hyperparameters to search: names mapped to domains, constants or nested spaces
/// (Ray's `param_space` dictionary).
///
/// ```
/// use mobula::tune::{self, SearchSpace};
/// let space = SearchSpace::new()
///     .param("a", tune::uniform(0.0, 1.0))
///     .param("b", tune::uniform(0.0, 20.0))
///     .param("act", tune::grid_search(["relu", "tanh"]))
///     .nested("opt", SearchSpace::new().param("lr", tune::loguniform(1e-4, 1e-1)))
///     .constant("epochs", 10);
/// ```
#[derive(Clone, Debug, Default)]
pub struct SearchSpace {
    entries: BTreeMap<String, Entry>,
}

impl SearchSpace {
    /// An empty space.
    pub fn new() -> Self {
        SearchSpace::default()
    }

    /// `name` drawn from `domain`.
    pub fn param(mut self, name: impl Into<String>, domain: Domain) -> Self {
        self.entries.insert(name.into(), Entry::Domain(domain));
        self
    }

    /// `name` always `value`.
    pub fn constant(mut self, name: impl Into<String>, value: impl Serialize) -> Self {
        self.entries
            .insert(name.into(), Entry::Fixed(to_json(value)));
        self
    }

    /// `name` is a nested configuration drawn from `space`.
    pub fn nested(mut self, name: impl Into<String>, space: SearchSpace) -> Self {
        self.entries.insert(name.into(), Entry::Nested(space));
        self
    }

    /// Checks every domain's bounds; the error names the parameter.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.walk(&mut Vec::new(), &mut |path, d| d.check(&path.join(".")))
    }

    fn walk(
        &self,
        path: &mut Vec<String>,
        f: &mut impl FnMut(&[String], &Domain) -> Result<(), String>,
    ) -> Result<(), String> {
        for (name, entry) in &self.entries {
            path.push(name.clone());
            let r = match entry {
                Entry::Domain(d) => f(path, d),
                Entry::Nested(s) => s.walk(path, f),
                Entry::Fixed(_) => Ok(()),
            };
            path.pop();
            r?;
        }
        Ok(())
    }

    /// The grid parameters, by path, with their values, in name order.
    pub(crate) fn grids(&self) -> Vec<(Vec<String>, Vec<Json>)> {
        let mut out = Vec::new();
        let _ = self.walk(&mut Vec::new(), &mut |path, d| {
            if let Domain::Grid(v) = d {
                out.push((path.to_vec(), v.clone()));
            }
            Ok(())
        });
        out
    }

    /// Every domain by path, in name order (for searchers that model them).
    pub(crate) fn domains(&self) -> Vec<(Vec<String>, Domain)> {
        let mut out = Vec::new();
        let _ = self.walk(&mut Vec::new(), &mut |path, d| {
            out.push((path.to_vec(), d.clone()));
            Ok(())
        });
        out
    }

    /// Draws one configuration: the parameters `fixed` names (by path: grid values, a
    /// searcher's choices) take those values, the others are drawn from `rng`, closures last.
    pub(crate) fn resolve(&self, fixed: &[(Vec<String>, Json)], rng: &mut Rng) -> TrialConfig {
        let mut config = TrialConfig(Json::Object(Default::default()));
        let mut later = Vec::new();
        self.fill(&mut Vec::new(), fixed, rng, &mut config, &mut later);
        for (path, f) in later {
            let value = f(rng, &config);
            config.set(&path, value);
        }
        config
    }

    fn fill(
        &self,
        path: &mut Vec<String>,
        fixed: &[(Vec<String>, Json)],
        rng: &mut Rng,
        config: &mut TrialConfig,
        later: &mut Vec<(Vec<String>, SampleFn)>,
    ) {
        for (name, entry) in &self.entries {
            path.push(name.clone());
            let given = fixed
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, v)| v.clone());
            match entry {
                Entry::Fixed(v) => config.set(path, v.clone()),
                Entry::Nested(s) => {
                    config.set(path, Json::Object(Default::default()));
                    s.fill(path, fixed, rng, config, later);
                }
                Entry::Domain(_) if given.is_some() => {
                    config.set(path, given.unwrap_or(Json::Null));
                }
                Entry::Domain(Domain::Grid(values)) => config.set(path, values[0].clone()),
                Entry::Domain(Domain::SampleFrom(f)) => {
                    config.set(path, Json::Null);
                    later.push((path.clone(), Arc::clone(f)));
                }
                Entry::Domain(d) => config.set(path, d.sample(rng)),
            }
            path.pop();
        }
    }
}

/// Why a configuration value could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No such key.
    #[error("the trial's config has no `{key}` (it has: {has})")]
    Missing {
        /// The key asked for.
        key: String,
        /// The keys there are.
        has: String,
    },
    /// The value is not of the type asked for.
    #[error("the trial's config has `{key}` = {value}, which is not a {expected}: {reason}")]
    WrongType {
        /// The key asked for.
        key: String,
        /// The value there.
        value: String,
        /// The type asked for.
        expected: &'static str,
        /// What the decoder said.
        reason: String,
    },
}

/// The hyperparameters of one trial (Ray's `config` dictionary): read them typed with
/// [`get`](Self::get); nested values by a dotted path (`"opt.lr"`).
#[derive(Clone, PartialEq, Default)]
pub struct TrialConfig(pub(crate) Json);

impl TrialConfig {
    /// A configuration from a JSON object.
    pub fn from_json(value: Json) -> Self {
        TrialConfig(value)
    }

    /// The value at `key` (dotted for nested ones) as a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        let value = self.lookup(key).ok_or_else(|| ConfigError::Missing {
            key: key.to_string(),
            has: self.keys().join(", "),
        })?;
        serde_json::from_value(value.clone()).map_err(|e| ConfigError::WrongType {
            key: key.to_string(),
            value: value.to_string(),
            expected: std::any::type_name::<T>(),
            reason: e.to_string(),
        })
    }

    /// The raw value at `key`, if there is one.
    pub fn lookup(&self, key: &str) -> Option<&Json> {
        key.split('.').try_fold(&self.0, |v, part| v.get(part))
    }

    /// The configuration as JSON.
    pub fn as_json(&self) -> &Json {
        &self.0
    }

    /// Every leaf's dotted path, in order.
    pub fn keys(&self) -> Vec<String> {
        fn leaves(v: &Json, prefix: &str, out: &mut Vec<String>) {
            match v {
                Json::Object(map) if !map.is_empty() || prefix.is_empty() => {
                    for (k, v) in map {
                        let p = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        leaves(v, &p, out);
                    }
                }
                _ => out.push(prefix.to_string()),
            }
        }
        let mut out = Vec::new();
        leaves(&self.0, "", &mut out);
        out
    }

    /// Sets the value at `path`, making objects on the way.
    pub(crate) fn set(&mut self, path: &[String], value: Json) {
        let mut at = &mut self.0;
        for (i, part) in path.iter().enumerate() {
            if !at.is_object() {
                *at = Json::Object(Default::default());
            }
            let map = at.as_object_mut().expect("made an object above");
            if i + 1 == path.len() {
                map.insert(part.clone(), value);
                return;
            }
            at = map
                .entry(part.clone())
                .or_insert_with(|| Json::Object(Default::default()));
        }
    }
}

impl fmt::Debug for TrialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for TrialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

// Sent between nodes as its JSON text (the wire format is not self-describing).
impl Serialize for TrialConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for TrialConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text)
            .map(TrialConfig)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_survives_the_wire_bit_for_bit() {
        let space = SearchSpace::new()
            .param("lr", loguniform(1e-5, 1e-1))
            .param("x", uniform(-1.0, 1.0));
        let mut rng = Rng::seeded(11);
        for _ in 0..200 {
            let config = space.resolve(&[], &mut rng);
            let bytes = postcard::to_allocvec(&config).unwrap();
            let back: TrialConfig = postcard::from_bytes(&bytes).unwrap();
            for key in ["lr", "x"] {
                let (a, b) = (
                    config.get::<f64>(key).unwrap(),
                    back.get::<f64>(key).unwrap(),
                );
                assert_eq!(a.to_bits(), b.to_bits(), "{key}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn every_domain_draws_within_its_bounds() {
        let mut rng = Rng::seeded(3);
        for _ in 0..2000 {
            let x = uniform(1.0, 2.0).sample(&mut rng).as_f64().unwrap();
            assert!((1.0..2.0).contains(&x));
            let x = quniform(0.0, 1.0, 0.25).sample(&mut rng).as_f64().unwrap();
            assert!([0.0, 0.25, 0.5, 0.75, 1.0].contains(&x), "{x}");
            let x = loguniform(1e-4, 1e-1).sample(&mut rng).as_f64().unwrap();
            assert!((1e-4..1e-1).contains(&x));
            let x = qloguniform(1.0, 100.0, 5.0)
                .sample(&mut rng)
                .as_f64()
                .unwrap();
            assert_eq!(x % 5.0, 0.0);
            let x = randint(-2, 3).sample(&mut rng).as_i64().unwrap();
            assert!((-2..3).contains(&x));
            let x = qrandint(0, 10, 5).sample(&mut rng).as_i64().unwrap();
            assert!([0, 5, 10].contains(&x), "{x}");
            let x = lograndint(1, 1000).sample(&mut rng).as_i64().unwrap();
            assert!((1..1000).contains(&x));
            let x = choice(["a", "b"]).sample(&mut rng);
            assert!(x == "a" || x == "b");
        }
        // Every value of a choice and both ends of a qrandint come up.
        let picks: std::collections::HashSet<i64> = (0..200)
            .map(|_| qrandint(0, 10, 5).sample(&mut rng).as_i64().unwrap())
            .collect();
        assert_eq!(picks.len(), 3);
        assert!(uniform(2.0, 1.0).check("x").is_err());
        assert!(loguniform(0.0, 1.0).check("x").unwrap_err().contains("`x`"));
        assert!(choice(Vec::<u8>::new()).check("x").is_err());
    }

    #[test]
    fn configs_resolve_nested_values_and_closures_and_read_typed() {
        let space = SearchSpace::new()
            .param("a", uniform(0.0, 1.0))
            .param(
                "double_a",
                sample_from(|_, c| c.get::<f64>("a").unwrap() * 2.0),
            )
            .nested(
                "opt",
                SearchSpace::new().param("lr", loguniform(1e-3, 1e-1)),
            )
            .param("act", grid_search(["relu", "tanh"]))
            .constant("epochs", 5);
        space.check().unwrap();
        let grids = space.grids();
        assert_eq!(grids.len(), 1);
        let config = space.resolve(
            &[(vec!["act".into()], Json::from("tanh"))],
            &mut Rng::seeded(1),
        );
        let a: f64 = config.get("a").unwrap();
        assert_eq!(config.get::<f64>("double_a").unwrap(), a * 2.0);
        assert!(config.get::<f64>("opt.lr").unwrap() >= 1e-3);
        assert_eq!(config.get::<String>("act").unwrap(), "tanh");
        assert_eq!(config.get::<u32>("epochs").unwrap(), 5);
        assert!(matches!(
            config.get::<f64>("nope"),
            Err(ConfigError::Missing { .. })
        ));
        let err = config.get::<u32>("act").unwrap_err();
        assert!(matches!(err, ConfigError::WrongType { .. }), "{err}");
        assert!(err.to_string().contains("`act`"));
        // It travels as its JSON text.
        let bytes = postcard::to_allocvec(&config).unwrap();
        assert_eq!(postcard::from_bytes::<TrialConfig>(&bytes).unwrap(), config);
    }
}
