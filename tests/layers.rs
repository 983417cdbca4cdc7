//! The crate's layers go one way (docs/architecture.md): a file under `src/` imports only
//! from its own top-level module's layer or below, and the bottom layer (`src/base/`) names
//! no actix, tokio or quinn, reads no clock and starts no thread. This test reads `src/` as
//! text; it needs nothing from outside the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, lowest first. Modules of one layer do not import each other. Every top-level
/// module of `src/` must be in exactly one layer.
const LAYERS: &[&[&str]] = &[
    &["base"],
    &["object"],
    &["wire"],
    &["transport"],
    &["runtime"],
    &["cluster"],
    &["logs", "state", "metrics"],
    &["http"],
    &["api"],
    &["collective"],
    &["tune", "serve", "util", "testing"],
    &["train", "data"],
];

/// Files that are the crate's root or binaries: they may name any layer.
const ROOTS: &[&str] = &["lib", "bin"];

/// What the bottom layer must not name (in code, not in comments or strings).
const IMPURE: &[&str] = &[
    "actix",
    "tokio",
    "quinn",
    "rustls",
    "SystemTime",
    "Instant::now",
    "std::thread",
    "thread::spawn",
    "thread_local!",
    "std::fs",
    "std::net::TcpStream",
    "std::net::UdpSocket",
];

fn rank_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The code of a file with comments, string and char literals blanked, and `#[cfg(test)]`
/// modules removed (tests may use anything).
fn code_of(text: &str) -> String {
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i] == '/' && bytes.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if bytes[i] == '*' && bytes.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&bytes, i)
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while bytes.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if bytes.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= bytes.len() {
                    break;
                }
                if bytes[j] == '"' && (0..hashes).all(|k| bytes.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && is_char_literal(&bytes, i) {
            i += 1;
            while i < bytes.len() && bytes[i] != '\'' {
                if bytes[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    without_test_modules(&out)
}

fn prev_is_ident(bytes: &[char], i: usize) -> bool {
    i > 0 && (bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_')
}

/// Whether the `'` at `i` opens a char literal (not a lifetime or a label).
fn is_char_literal(bytes: &[char], i: usize) -> bool {
    matches!(
        (bytes.get(i + 1), bytes.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// Removes every `#[cfg(test)] mod name { ... }` block.
fn without_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_mod = trimmed.starts_with("mod ")
            || trimmed.starts_with("pub mod ")
            || trimmed.starts_with("pub(crate) mod ");
        match (is_mod, trimmed.find('{'), trimmed.find(';')) {
            (true, Some(open), semi) if semi.is_none_or(|s| s > open) => {
                let start = after.len() - trimmed.len() + open;
                let mut depth = 0;
                let mut end = after.len();
                for (k, ch) in after[start..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = start + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            _ => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The top-level modules a piece of code names through `crate::` paths, including those
/// inside `use crate::{a::x, b};` groups.
fn named_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `mobula_crate::` or the like
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = group.len();
            for (k, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let mut depth = 0;
            let mut item = String::new();
            for ch in group[..end].chars().chain(std::iter::once(',')) {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            found.push(name);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(ch);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("a file under src/");
    let first = rel
        .components()
        .next()
        .expect("a path")
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// Every import that goes against the layers, as `importer -> imported: file`.
fn violations(files: &[(String, String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (module, path, code) in files {
        if ROOTS.contains(&module.as_str()) {
            continue;
        }
        let Some(own) = rank_of(module) else {
            out.push(format!("{path}: module `{module}` is in no layer"));
            continue;
        };
        for named in named_modules(code) {
            if named == *module {
                continue;
            }
            let Some(theirs) = rank_of(&named) else {
                continue; // not a top-level module (`crate::println!` and the like)
            };
            if theirs >= own {
                out.push(format!("{path}: {module} imports {named}"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every name the bottom layer must not use, as `file: name`.
fn impurities(files: &[(String, String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (module, path, code) in files {
        if module != LAYERS[0][0] {
            continue;
        }
        for name in IMPURE {
            if code.contains(name) {
                out.push(format!("{path}: {name}"));
            }
        }
    }
    out
}

fn read_src() -> (Vec<(String, String, String)>, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let mut files = Vec::new();
    let mut modules = Vec::new();
    for path in paths {
        let module = module_of(&src, &path);
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        let shown = path
            .strip_prefix(&src)
            .expect("under src")
            .display()
            .to_string();
        modules.push(module.clone());
        files.push((module, shown, code_of(&text)));
    }
    modules.sort();
    modules.dedup();
    (files, modules)
}

#[test]
fn every_import_goes_to_the_same_layer_or_below() {
    let (files, modules) = read_src();
    let mut per_module: BTreeMap<&str, usize> = BTreeMap::new();
    for (module, _, _) in &files {
        *per_module.entry(module.as_str()).or_default() += 1;
    }
    assert!(
        per_module.len() >= 10 && files.len() > 100,
        "read too little of src/: {per_module:?}"
    );
    for module in &modules {
        assert!(
            ROOTS.contains(&module.as_str()) || rank_of(module).is_some(),
            "src/{module} is in no layer: add it to LAYERS here and to docs/architecture.md"
        );
    }
    let bad = violations(&files);
    assert!(
        bad.is_empty(),
        "imports against the layers (lowest first: {LAYERS:?}):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_bottom_layer_is_pure() {
    let (files, _) = read_src();
    assert!(
        files.iter().filter(|(m, _, _)| m == "base").count() >= 10,
        "src/base/ not found"
    );
    let bad = impurities(&files);
    assert!(
        bad.is_empty(),
        "the bottom layer must not name these:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_architecture_page_lists_the_same_layers() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .expect("docs/architecture.md");
    for layer in LAYERS {
        for module in *layer {
            assert!(
                page.contains(&format!("`{module}/`")),
                "docs/architecture.md does not name `{module}/`"
            );
        }
    }
}

/// The checker itself finds what it must: an upward import, in `use` groups too, but not in
/// comments, strings or test modules; and an impure name in the bottom layer.
#[test]
fn the_checker_catches_what_it_should() {
    let file =
        |module: &str, text: &str| (module.to_string(), format!("{module}/x.rs"), code_of(text));
    let upward = [file("object", "use crate::runtime::global::Runtime;\n")];
    assert_eq!(violations(&upward).len(), 1);
    let grouped = [file(
        "wire",
        "use crate::{base::id::NodeId, api::Config};\n",
    )];
    assert_eq!(violations(&grouped), vec!["wire/x.rs: wire imports api"]);
    let in_path = [file(
        "base",
        "fn f() { let _ = crate::cluster::node_of; }\n",
    )];
    assert_eq!(violations(&in_path).len(), 1);
    let own_and_below = [file(
        "http",
        "use crate::http::x;\nuse crate::base::id::NodeId;\n",
    )];
    assert!(violations(&own_and_below).is_empty());
    let sideways = [file("state", "use crate::metrics::x;\n")];
    assert_eq!(
        violations(&sideways),
        vec!["state/x.rs: state imports metrics"]
    );
    let hidden = [file(
        "object",
        "// crate::api is named in a comment\nconst S: &str = \"crate::api\";\n\
         #[cfg(test)]\nmod tests {\n    use crate::api::x;\n    fn f() { let c = '{'; }\n}\n",
    )];
    assert!(violations(&hidden).is_empty(), "{:?}", violations(&hidden));
    let after_tests = [file(
        "object",
        "#[cfg(test)]\nmod tests { fn f() {} }\nuse crate::cluster::x;\n",
    )];
    assert_eq!(violations(&after_tests).len(), 1);
    let unknown = [file("newthing", "fn f() {}\n")];
    assert_eq!(violations(&unknown).len(), 1);
    let impure = [
        file(
            "base",
            "use std::time::Instant;\nfn f() { Instant::now(); }\n",
        ),
        file("base", "fn f() { std::thread::spawn(|| ()); }\n"),
        file(
            "base",
            "/// Not an actix actor.\nfn f() -> &'static str { \"tokio\" }\n",
        ),
    ];
    let found = impurities(&impure);
    assert!(
        found.iter().any(|f| f.ends_with("Instant::now")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|f| f.ends_with("thread::spawn")),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|f| f.ends_with("actix") || f.ends_with("tokio")),
        "names in comments and strings are not code: {found:?}"
    );
}
