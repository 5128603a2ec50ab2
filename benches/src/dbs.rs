//! [`BenchDatabase`] for ttlcask-engine and its peers. Each write call ends durable the way
//! the store documents it: ttlcask `Durability::Always`; redb `Durability::Immediate`; LMDB
//! a synchronous commit; fjall `PersistMode::SyncData`; sled `flush()` plus an `fdatasync`
//! of its files (its flush issues only `sync_file_range`, DESIGN.md).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::{BenchDatabase, Compacted, OpenMode, Result, KEY_LEN, VALUE_LEN};

/// Cache given to every peer that has one: larger than the data set, so reads are not
/// limited by a default cache size.
const CACHE_BYTES: usize = 1 << 30;
/// Operations per ttlcask batch in bulk phases (one frame of about 2 MiB).
const TTLCASK_BATCH: usize = 10_000;
const NS: &[u8] = b"bench";

/// ttlcask-engine.
pub struct Ttlcask {
    store: ttlcask_engine::Store,
}

impl BenchDatabase for Ttlcask {
    const NAME: &'static str = "ttlcask";

    fn open(dir: &Path, mode: OpenMode) -> Result<Self> {
        use ttlcask_engine::Durability;
        let durability = match mode {
            // A bulk phase syncs once at its end, as the peers' single transaction does.
            OpenMode::Bulk => Durability::Never,
            OpenMode::Durable => Durability::Always,
        };
        let store = ttlcask_engine::Store::builder()
            .durability(durability)
            .compaction_interval(None)
            // TTLCASK_BENCH_NO_SPARES=1: no spare segments (and no background thread), to
            // measure what writing them ahead costs the other rows.
            .spare_segments(std::env::var_os("TTLCASK_BENCH_NO_SPARES").is_none())
            .open(dir)?;
        Ok(Self { store })
    }

    fn bulk_put(
        &self,
        pairs: &mut dyn Iterator<Item = ([u8; KEY_LEN], [u8; VALUE_LEN])>,
    ) -> Result<()> {
        use ttlcask_engine::{PutOptions, WriteBatch};
        loop {
            let bytes = TTLCASK_BATCH * (NS.len() + KEY_LEN + VALUE_LEN);
            let mut batch = WriteBatch::with_capacity(TTLCASK_BATCH, bytes);
            for (k, v) in (&mut *pairs).take(TTLCASK_BATCH) {
                batch.put(NS, &k, &v, PutOptions::default());
            }
            if batch.is_empty() {
                break;
            }
            self.store.write_batch(batch)?;
        }
        self.store.sync()?;
        Ok(())
    }

    fn bulk_remove(&self, keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>) -> Result<()> {
        use ttlcask_engine::WriteBatch;
        loop {
            let bytes = TTLCASK_BATCH * (NS.len() + KEY_LEN);
            let mut batch = WriteBatch::with_capacity(TTLCASK_BATCH, bytes);
            for k in (&mut *keys).take(TTLCASK_BATCH) {
                batch.delete(NS, &k);
            }
            if batch.is_empty() {
                break;
            }
            self.store.write_batch(batch)?;
        }
        self.store.sync()?;
        Ok(())
    }

    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.store
            .put(NS, key, value, ttlcask_engine::PutOptions::default())?;
        Ok(())
    }

    fn read_each(
        &self,
        keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>,
        seen: &mut dyn FnMut(&[u8]),
    ) -> Result<u64> {
        let mut missing = 0;
        for k in keys {
            match self.store.get(NS, &k)? {
                Some(item) => seen(&item.value),
                None => missing += 1,
            }
        }
        Ok(missing)
    }

    fn read_batch(
        &self,
        keys: &[[u8; KEY_LEN]],
        seen: &mut dyn FnMut(&[u8]),
    ) -> Option<Result<u64>> {
        let mut missing = 0;
        for read in self.store.get_many(NS, keys) {
            match read {
                Ok(Some(item)) => seen(&item.value),
                Ok(None) => missing += 1,
                Err(e) => return Some(Err(e.into())),
            }
        }
        Some(Ok(missing))
    }

    fn compact(&mut self) -> Result<Compacted> {
        // The harness reopens before compacting, so every earlier record is in a sealed segment.
        self.store.compact()?;
        Ok(Compacted::InPlace)
    }

    fn write_counters(&self) -> Option<(u64, u64)> {
        let s = self.store.stats();
        Some((s.writes, s.fsyncs))
    }

    fn index_bytes(&self) -> Option<u64> {
        Some(self.store.stats().index_bytes)
    }
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

/// redb.
pub struct Redb {
    db: redb::Database,
}

impl BenchDatabase for Redb {
    const NAME: &'static str = "redb";

    fn open(dir: &Path, _mode: OpenMode) -> Result<Self> {
        let db = redb::Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(REDB_TABLE)?;
        txn.commit()?;
        Ok(Self { db })
    }

    fn bulk_put(
        &self,
        pairs: &mut dyn Iterator<Item = ([u8; KEY_LEN], [u8; VALUE_LEN])>,
    ) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(REDB_TABLE)?;
            for (k, v) in pairs {
                table.insert(&k[..], &v[..])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn bulk_remove(&self, keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(REDB_TABLE)?;
            for k in keys {
                table.remove(&k[..])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        txn.open_table(REDB_TABLE)?.insert(key, value)?;
        txn.commit()?;
        Ok(())
    }

    fn read_each(
        &self,
        keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>,
        seen: &mut dyn FnMut(&[u8]),
    ) -> Result<u64> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REDB_TABLE)?;
        let mut missing = 0;
        for k in keys {
            match table.get(&k[..])? {
                Some(v) => seen(v.value()),
                None => missing += 1,
            }
        }
        Ok(missing)
    }

    fn compact(&mut self) -> Result<Compacted> {
        while self.db.compact()? {}
        Ok(Compacted::InPlace)
    }
}

/// LMDB through heed.
pub struct Lmdb {
    env: heed::Env,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
    dir: PathBuf,
}

impl BenchDatabase for Lmdb {
    const NAME: &'static str = "lmdb";

    fn open(dir: &Path, _mode: OpenMode) -> Result<Self> {
        // SAFETY: the directory is this benchmark's own and is opened by one Env at a time.
        let env = unsafe {
            heed::EnvOpenOptions::new()
                .map_size(16 << 30)
                .max_readers(256)
                .open(dir)?
        };
        let mut txn = env.write_txn()?;
        let db = env.create_database(&mut txn, None)?;
        txn.commit()?;
        Ok(Self {
            env,
            db,
            dir: dir.to_path_buf(),
        })
    }

    fn bulk_put(
        &self,
        pairs: &mut dyn Iterator<Item = ([u8; KEY_LEN], [u8; VALUE_LEN])>,
    ) -> Result<()> {
        let mut txn = self.env.write_txn()?;
        for (k, v) in pairs {
            self.db.put(&mut txn, &k, &v)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn bulk_remove(&self, keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>) -> Result<()> {
        let mut txn = self.env.write_txn()?;
        for k in keys {
            self.db.delete(&mut txn, &k)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut txn = self.env.write_txn()?;
        self.db.put(&mut txn, key, value)?;
        txn.commit()?;
        Ok(())
    }

    fn read_each(
        &self,
        keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>,
        seen: &mut dyn FnMut(&[u8]),
    ) -> Result<u64> {
        let txn = self.env.read_txn()?;
        let mut missing = 0;
        for k in keys {
            match self.db.get(&txn, &k)? {
                Some(v) => seen(v),
                None => missing += 1,
            }
        }
        Ok(missing)
    }

    fn compact(&mut self) -> Result<Compacted> {
        // LMDB compacts by copying (mdb_env_copy2 with MDB_CP_COMPACT).
        let copy = self.dir.with_extension("compacted.mdb");
        self.env
            .copy_to_path(&copy, heed::CompactionOption::Enabled)?;
        Ok(Compacted::Copy(copy))
    }
}

/// fjall.
pub struct Fjall {
    db: fjall::Database,
    keyspace: fjall::Keyspace,
}

impl BenchDatabase for Fjall {
    const NAME: &'static str = "fjall";

    fn open(dir: &Path, _mode: OpenMode) -> Result<Self> {
        let db = fjall::Database::builder(dir)
            .cache_size(CACHE_BYTES as u64)
            .open()?;
        let keyspace = db.keyspace("bench", fjall::KeyspaceCreateOptions::default)?;
        Ok(Self { db, keyspace })
    }

    fn bulk_put(
        &self,
        pairs: &mut dyn Iterator<Item = ([u8; KEY_LEN], [u8; VALUE_LEN])>,
    ) -> Result<()> {
        for (k, v) in pairs {
            self.keyspace.insert(&k[..], &v[..])?;
        }
        self.db.persist(fjall::PersistMode::SyncData)?;
        Ok(())
    }

    fn bulk_remove(&self, keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>) -> Result<()> {
        for k in keys {
            self.keyspace.remove(&k[..])?;
        }
        self.db.persist(fjall::PersistMode::SyncData)?;
        Ok(())
    }

    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut batch = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncData));
        batch.insert(&self.keyspace, key, value);
        batch.commit()?;
        Ok(())
    }

    fn read_each(
        &self,
        keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>,
        seen: &mut dyn FnMut(&[u8]),
    ) -> Result<u64> {
        let mut missing = 0;
        for k in keys {
            match self.keyspace.get(k)? {
                Some(v) => seen(&v),
                None => missing += 1,
            }
        }
        Ok(missing)
    }

    fn compact(&mut self) -> Result<Compacted> {
        self.keyspace.rotate_memtable_and_wait()?;
        self.keyspace.major_compact()?;
        Ok(Compacted::InPlace)
    }
}

/// sled (0.34, the last release).
pub struct Sled {
    db: sled::Db,
    /// sled's data file (`<dir>/db`), where `flush()` writes every page.
    data: File,
}

impl Sled {
    /// `flush()` only issues `sync_file_range`; an `fdatasync` of the data file makes the
    /// write durable (values here are far below sled's blob threshold, so no blob files).
    fn make_durable(&self) -> Result<()> {
        self.db.flush()?;
        self.data.sync_data()?;
        Ok(())
    }
}

impl BenchDatabase for Sled {
    const NAME: &'static str = "sled";

    fn open(dir: &Path, _mode: OpenMode) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES as u64)
            .open()?;
        let data = File::open(dir.join("db"))?;
        Ok(Self { db, data })
    }

    fn bulk_put(
        &self,
        pairs: &mut dyn Iterator<Item = ([u8; KEY_LEN], [u8; VALUE_LEN])>,
    ) -> Result<()> {
        for (k, v) in pairs {
            self.db.insert(k, &v[..])?;
        }
        self.make_durable()
    }

    fn bulk_remove(&self, keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>) -> Result<()> {
        for k in keys {
            self.db.remove(k)?;
        }
        self.make_durable()
    }

    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.db.insert(key, value)?;
        self.make_durable()
    }

    fn read_each(
        &self,
        keys: &mut dyn Iterator<Item = [u8; KEY_LEN]>,
        seen: &mut dyn FnMut(&[u8]),
    ) -> Result<u64> {
        let mut missing = 0;
        for k in keys {
            match self.db.get(k)? {
                Some(v) => seen(&v),
                None => missing += 1,
            }
        }
        Ok(missing)
    }

    fn compact(&mut self) -> Result<Compacted> {
        Ok(Compacted::Unsupported)
    }
}
