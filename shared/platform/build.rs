// The migrations are embedded by `sqlx::migrate!`; on stable Rust a new file in
// the folder does not rebuild the crate by itself, so say it here.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
