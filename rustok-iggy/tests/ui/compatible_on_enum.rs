use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders", codec = "postcard", compatible_with = ["0123456789abcdef"])]
enum OrderEvent {
    Placed { tenant_id: String },
}

fn main() {}
