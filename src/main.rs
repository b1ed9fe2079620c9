fn main() {
    println!("misp-feed");
}
