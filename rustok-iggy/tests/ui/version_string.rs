use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders")]
enum OrderEvent {
    #[iggy(version = "2")]
    Placed { tenant_id: String },
}

fn main() {}
