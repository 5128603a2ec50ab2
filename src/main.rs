fn main() {
    println!("ttlcask {}", env!("CARGO_PKG_VERSION"));
}
