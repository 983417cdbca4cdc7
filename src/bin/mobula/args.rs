//! The command line: options, and where the cluster directory is.

use std::path::PathBuf;

/// Parsed command-line options.
#[derive(Debug, Default)]
pub struct Options {
    pub help: bool,
    pub head: bool,
    pub block: bool,
    pub follow: bool,
    pub no_wait: bool,
    pub listen: Option<String>,
    pub address: Option<String>,
    pub token: Option<String>,
    pub ca_fingerprint: Option<String>,
    pub num_cpus: Option<f64>,
    pub build_cache_limit: Option<u64>,
    pub dir: Option<PathBuf>,
    pub dashboard: Option<String>,
    pub no_dashboard: bool,
    pub dashboard_https: bool,
    pub filters: Vec<String>,
    pub limit: Option<usize>,
    pub json: bool,
    pub output: Option<PathBuf>,
    /// Words that are not options (what `list` and `summary` are about).
    pub words: Vec<String>,
    /// Everything after `--` (a job's program and its arguments).
    pub rest: Vec<String>,
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--help" | "-h" => o.help = true,
            "--follow" => o.follow = true,
            "--no-wait" => o.no_wait = true,
            "--" => {
                o.rest = args[i + 1..].to_vec();
                break;
            }
            "--head" => o.head = true,
            "--block" => o.block = true,
            "--listen" => {
                o.listen = Some(value(i)?);
                i += 1;
            }
            "--build-cache-limit" => {
                let v = value(i)?;
                o.build_cache_limit = Some(bytes_of(&v).ok_or_else(|| {
                    format!("--build-cache-limit takes a size (4G, 500M, bytes), not {v:?}")
                })?);
                i += 1;
            }
            "--address" => {
                o.address = Some(value(i)?);
                i += 1;
            }
            "--token" => {
                o.token = Some(value(i)?);
                i += 1;
            }
            "--ca-fingerprint" => {
                o.ca_fingerprint = Some(value(i)?);
                i += 1;
            }
            "--num-cpus" => {
                let v = value(i)?;
                o.num_cpus = Some(
                    v.parse()
                        .map_err(|_| format!("--num-cpus takes a number, not {v:?}"))?,
                );
                i += 1;
            }
            "--dir" => {
                o.dir = Some(PathBuf::from(value(i)?));
                i += 1;
            }
            "--dashboard-address" => {
                o.dashboard = Some(value(i)?);
                i += 1;
            }
            "--no-dashboard" => o.no_dashboard = true,
            "--dashboard-https" => o.dashboard_https = true,
            "--output" => {
                o.output = Some(PathBuf::from(value(i)?));
                i += 1;
            }
            "--filter" => {
                o.filters.push(value(i)?);
                i += 1;
            }
            "--limit" => {
                let v = value(i)?;
                o.limit = Some(
                    v.parse()
                        .map_err(|_| format!("--limit takes a count, not {v:?}"))?,
                );
                i += 1;
            }
            "--format" => {
                o.json = match value(i)?.as_str() {
                    "json" => true,
                    "table" => false,
                    other => return Err(format!("--format is table or json, not {other:?}")),
                };
                i += 1;
            }
            word if !word.starts_with('-') => o.words.push(word.to_string()),
            other => return Err(format!("unknown option {other:?}")),
        }
        i += 1;
    }
    Ok(o)
}

/// A size written as bytes or with a K, M, G or T suffix (powers of 1024).
fn bytes_of(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return None,
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// The file, beside the default cluster directory, naming the directory `mobula start` was
/// last given (so that later commands find it without `--dir`).
fn remembered() -> PathBuf {
    let default = mobula::transport::credentials::ClusterDir::default_path();
    default.with_file_name("current-cluster")
}

/// The cluster directory: `--dir`, else `$MOBULA_DIR`, else the one `mobula start --dir`
/// last named (while it holds a cluster), else `~/.mobula/cluster`.
pub fn dir_of(o: &Options) -> PathBuf {
    if let Some(dir) = &o.dir {
        return dir.clone();
    }
    if std::env::var_os("MOBULA_DIR").is_none()
        && let Ok(text) = std::fs::read_to_string(remembered())
    {
        let dir = PathBuf::from(text.trim());
        if dir.join("head.addr").is_file() {
            return dir;
        }
    }
    mobula::transport::credentials::ClusterDir::default_path()
}

/// Remembers `dir` for later commands (when it is not the default one).
pub fn remember(dir: &std::path::Path) {
    let default = mobula::transport::credentials::ClusterDir::default_path();
    let path = remembered();
    if dir == default {
        let _ = std::fs::remove_file(path);
        return;
    }
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(path, dir.to_string_lossy().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_their_suffix() {
        assert_eq!(bytes_of("4G"), Some(4 << 30));
        assert_eq!(bytes_of("500m"), Some(500 << 20));
        assert_eq!(bytes_of("1024"), Some(1024));
        assert_eq!(bytes_of("x"), None);
        assert_eq!(bytes_of("3Q"), None);
    }
}
