//! Print the summary `finecast info` shows for each file given.
//!
//! `cargo run -p finecast-io --example info -- FILE... [--json]`

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let mut failed = false;
    for path in args.iter().filter(|a| *a != "--json") {
        let summary = finecast_io::open(std::path::Path::new(path)).and_then(|ds| ds.describe());
        match summary {
            Ok(info) if json => match serde_json::to_string_pretty(&info) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("{path}: {e}");
                    failed = true;
                }
            },
            Ok(info) => print!("{info}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
