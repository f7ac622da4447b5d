//! Rewrites the committed JSON Schemas under `contracts/` from the Rust types:
//! run it after changing an event type, and commit what changed.

use std::fs;
use std::path::Path;

use contracts::events::schemas;

fn main() -> std::io::Result<()> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join(schemas::FOLDER);
    fs::create_dir_all(&folder)?;
    for contract in schemas::all() {
        fs::write(folder.join(&contract.file_name), contract.file_contents()?)?;
        println!("wrote {}/{}", schemas::FOLDER, contract.file_name);
    }
    Ok(())
}
