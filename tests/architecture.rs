//! The structure docs/architecture.md describes, checked against the code: each module of
//! gan_lib uses only the modules its row of the table allows, every module has a row, no file
//! is over 600 lines (the kernels and the tests aside) and no function over 80.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;

/// The table of docs/architecture.md: module → the modules it may use.
fn documented_rules() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/architecture.md")).unwrap();
    let mut rules = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("| module | holds | may use |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let module = cells[0].trim_matches('`').to_owned();
        let allowed = backticked(cells[cells.len() - 1]);
        rules.insert(module, allowed);
    }
    assert!(
        rules.len() > 10,
        "no rule table found in docs/architecture.md"
    );
    rules
}

/// The `names` in backticks in a table cell.
fn backticked(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, name)| name.to_owned())
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A file's code without its tests (from the first `#[cfg(test)]`) and without comments.
fn code_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect()
}

/// The crate's top-level modules that `code` names as `crate::module` or in `crate::{…}`.
fn modules_used(code: &[&str], modules: &BTreeSet<String>) -> BTreeSet<String> {
    let text = code.join("\n");
    let mut used = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            group.split(',').map(|n| n.trim()).collect()
        } else {
            vec![rest]
        };
        for name in names {
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) {
                used.insert(name);
            }
        }
    }
    used
}

/// The top-level module a file of gan_lib/src belongs to (`train` for `train/step.rs`).
fn module_of(file: &Path, src: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_str().unwrap().trim_end_matches(".rs").to_owned()
}

#[test]
fn each_module_uses_only_what_the_architecture_allows() {
    let rules = documented_rules();
    let src = Path::new(ROOT).join("gan_lib/src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches("pub ");
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect();
    let undocumented: Vec<_> = modules.iter().filter(|m| !rules.contains_key(*m)).collect();
    assert!(
        undocumented.is_empty(),
        "modules without a row in docs/architecture.md: {undocumented:?}"
    );
    let mut breaches = Vec::new();
    for file in rust_files(&src) {
        let module = module_of(&file, &src);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for used in modules_used(&code_lines(&text), &modules) {
            if used != module && !rules[&module].contains(&used) {
                breaches.push(format!(
                    "{} ({module}) uses {used}",
                    file.strip_prefix(ROOT).unwrap().display()
                ));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "imports docs/architecture.md does not allow:\n{}",
        breaches.join("\n")
    );
}

/// The rule test reads what it should: a use of a module, grouped or not, is seen, and
/// comments and tests are not.
#[test]
fn the_rule_check_sees_uses_and_skips_comments_and_tests() {
    let modules: BTreeSet<String> = ["nn", "ops", "train"].map(String::from).into();
    let code = "use crate::{nn::Pass, ops};\n// see crate::train\nfn f() { crate::nn::x() }\n#[cfg(test)]\nuse crate::train;";
    let used = modules_used(&code_lines(code), &modules);
    assert_eq!(used, ["nn", "ops"].map(String::from).into());
}

/// `(first line, lines)` of each function in `text` longer than `limit`: from its `fn` line to
/// the closing brace at the same indentation.
fn long_functions(text: &str, limit: usize) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let header = trimmed
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("const ")
            .trim_start_matches("unsafe ");
        if !header.starts_with("fn ") || trimmed.ends_with(';') {
            continue;
        }
        let end = lines[i..]
            .iter()
            .position(|l| {
                *l == format!("{indent}}}")
                    || (l.ends_with('}') && l.starts_with(&format!("{indent}fn")))
            })
            .map_or(lines.len(), |n| i + n);
        let length = end - i + 1;
        if length > limit {
            long.push((i + 1, header.chars().take(50).collect(), length));
        }
    }
    long
}

#[test]
fn no_file_over_600_lines_and_no_function_over_80() {
    let mut too_long = Vec::new();
    for dir in ["gan_lib/src", "src"] {
        for file in rust_files(&Path::new(ROOT).join(dir)) {
            let name = file.strip_prefix(ROOT).unwrap().display().to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            let kernel = name.starts_with("gan_lib/src/ops/");
            let lines = text
                .lines()
                .take_while(|l| l.trim() != "#[cfg(test)]")
                .count();
            if !kernel && lines > MAX_FILE_LINES {
                too_long.push(format!("{name}: {lines} lines before its tests"));
            }
            for (line, header, length) in long_functions(&text, MAX_FN_LINES) {
                too_long.push(format!("{name}:{line}: {header}… is {length} lines"));
            }
        }
    }
    assert!(too_long.is_empty(), "{}", too_long.join("\n"));
}

/// The function-length check measures what it should: a 3-line function is 3 lines, and one
/// over the limit is reported.
#[test]
fn the_length_check_measures_functions() {
    let body = (0..100).map(|_| "    x();\n").collect::<String>();
    let text = format!("fn short() {{\n    x();\n}}\n\npub fn long() {{\n{body}}}\n");
    assert_eq!(
        long_functions(&text, 3),
        vec![(5, "fn long() {".to_owned(), 102)]
    );
}
