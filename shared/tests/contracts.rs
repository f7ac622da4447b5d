//! The committed contracts under `contracts/` held against the Rust types: the
//! schemas must be exactly what the types generate, so a change to an event
//! type cannot ship without its schema (and cannot silently alter a version
//! that was already published).

use std::fs;
use std::path::{Path, PathBuf};

use shared::events::contracts::{self, Contract};

fn contracts_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(contracts::FOLDER)
}

/// The names of the files in `folder` that end with `suffix`, sorted.
fn file_names(folder: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Why the committed file differs from the generated text, or `None` when it
/// does not. Line endings are ignored, so a checkout with CRLF still passes.
fn drift(contract: &Contract, folder: &Path) -> Option<String> {
    let name = format!("{}/{}", contracts::FOLDER, contract.file_name);
    let generated = contract.file_contents().expect("a schema serialises");
    let committed = match fs::read_to_string(folder.join(&contract.file_name)) {
        Ok(text) => text.replace("\r\n", "\n"),
        Err(e) => return Some(format!("{name} cannot be read: {e}")),
    };
    if committed == generated {
        return None;
    }
    let first_difference = committed
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    Some(format!(
        "{name} differs from what the types generate, from line {}:\n      committed: {}\n      generated: {}",
        first_difference + 1,
        committed
            .lines()
            .nth(first_difference)
            .unwrap_or("<end of file>"),
        generated
            .lines()
            .nth(first_difference)
            .unwrap_or("<end of file>"),
    ))
}

#[test]
fn every_committed_schema_matches_the_rust_types() {
    let folder = contracts_folder();
    let drifted: Vec<String> = contracts::all()
        .iter()
        .filter_map(|contract| drift(contract, &folder))
        .collect();
    assert!(
        drifted.is_empty(),
        "the committed contracts no longer match the Rust types:\n  - {}\n\
         Regenerate them with `{}` and commit the result. A superseded version's \
         schema must not change: give the changed payload a new dataversion instead \
         (see contracts/README.md).",
        drifted.join("\n  - "),
        contracts::REGENERATE,
    );
}

#[test]
fn every_committed_schema_is_generated_by_a_type() {
    let generated: Vec<String> = contracts::all().into_iter().map(|c| c.file_name).collect();
    let orphans: Vec<String> = file_names(&contracts_folder(), ".schema.json")
        .into_iter()
        .filter(|name| !generated.contains(name))
        .collect();
    assert!(
        orphans.is_empty(),
        "no Rust type generates {orphans:?}: delete the file(s), or restore the type \
         if consumers still accept that version, then run `{}`",
        contracts::REGENERATE,
    );
}
