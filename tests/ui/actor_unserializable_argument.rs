use std::sync::mpsc::Sender;

#[mobula::actor]
struct Notifier {
    sent: u32,
}

#[mobula::actor]
impl Notifier {
    fn new() -> Self {
        Notifier { sent: 0 }
    }

    fn notify(&mut self, to: Sender<String>) -> u32 {
        let _ = to.send("hi".into());
        self.sent += 1;
        self.sent
    }
}

fn main() {}
