//! A small bank made of actors: accounts are actors, a named ledger actor records every
//! transfer, tasks move money between accounts through handles they are given, and an
//! account that panics on a bad request is restarted by its supervisor.
//!
//! Run it with `cargo run --release --example actors`.

use mobula::prelude::*;

/// One account: a balance.
#[mobula::actor(max_restarts = 1)]
struct Account {
    owner: String,
    balance: i64,
}

#[mobula::actor]
impl Account {
    fn new(owner: String, opening: i64) -> Self {
        Account {
            owner,
            balance: opening,
        }
    }

    fn balance(&self) -> i64 {
        self.balance
    }

    fn deposit(&mut self, amount: i64) -> i64 {
        self.balance += amount;
        self.balance
    }

    /// Takes money out; an overdraft is an error, the account lives on.
    fn withdraw(&mut self, amount: i64) -> Result<i64, String> {
        if amount > self.balance {
            return Err(format!(
                "{} has only {}, cannot pay {amount}",
                self.owner, self.balance
            ));
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    /// A bug: negative audits crash the account (its constructor then runs again).
    fn audit(&self, level: i64) -> i64 {
        assert!(level >= 0, "audit level must not be negative, got {level}");
        self.balance
    }
}

/// A named actor every transfer reports to.
#[mobula::actor]
struct Ledger {
    entries: Vec<String>,
}

#[mobula::actor]
impl Ledger {
    fn new() -> Self {
        Ledger {
            entries: Vec::new(),
        }
    }

    fn record(&mut self, entry: String) -> usize {
        self.entries.push(entry);
        self.entries.len()
    }

    fn entries(&self) -> Vec<String> {
        self.entries.clone()
    }
}

/// Moves money between two accounts; the task finds the ledger by name.
#[mobula::remote]
fn transfer(
    from: AccountHandle,
    to: AccountHandle,
    amount: i64,
    note: String,
) -> anyhow::Result<i64> {
    let ledger = mobula::get_actor::<Ledger>("ledger")?;
    match from.withdraw(amount).get() {
        Ok(_) => {
            let balance = to.deposit(amount).get()?;
            ledger.record(format!("{note}: moved {amount}")).get()?;
            Ok(balance)
        }
        Err(e) => {
            ledger.record(format!("{note}: refused ({e})")).get()?;
            Err(e.into())
        }
    }
}

fn main() -> anyhow::Result<()> {
    let _mobula = mobula::init(Config::default().num_cpus(2))?;
    let _ledger = Ledger::options().name("ledger").remote()?;
    let alice = Account::remote("alice".to_string(), 100)?;
    let bob = Account::remote("bob".to_string(), 20)?;

    // Tasks get handles to the accounts and move money between them.
    let t1 = transfer.remote(alice.clone(), bob.clone(), 30, "rent".to_string());
    let t2 = transfer.remote(bob.clone(), alice.clone(), 500, "car".to_string());
    println!("rent transfer: bob now has {}", t1.get()?);
    match t2.get() {
        Ok(_) => println!("car transfer went through?"),
        Err(e) => println!("car transfer refused: {e}"),
    }

    // Look the ledger up by name, as any task or driver could.
    let ledger = mobula::get_actor::<Ledger>("ledger")?;
    for entry in ledger.entries().get()? {
        println!("ledger: {entry}");
    }
    println!(
        "balances: alice {}, bob {}",
        alice.balance().get()?,
        bob.balance().get()?
    );

    // A panic inside a method fails that call; the account is restarted with fresh state.
    match alice.audit(-1).get() {
        Ok(_) => println!("audit passed?"),
        Err(e) => println!("audit failed: {e}"),
    }
    println!(
        "after the restart alice has {} (the constructor ran again)",
        alice.balance().get()?
    );
    Ok(())
}
