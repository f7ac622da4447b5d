//! Rewrites the committed contracts under `contracts/` from the Rust code: the
//! JSON Schemas from the event types, and the AsyncAPI document from the
//! topology and the schemas. Run it after changing either, and commit what
//! changed.

use std::fs;
use std::path::Path;

use contracts::asyncapi;
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
    fs::write(folder.join(asyncapi::FILE), asyncapi::file_contents()?)?;
    println!("wrote {}/{}", schemas::FOLDER, asyncapi::FILE);
    Ok(())
}
