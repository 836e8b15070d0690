use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

// Every mistake is reported at once, each at its own place.
#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(codec = "xml", version = 0, key = tenant)]
struct OrderPlaced {
    tenant_id: String,
}

fn main() {}
