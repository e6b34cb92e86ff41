"""The output directory: what `curate run` may write, replace and delete, and when.

- An output that overlaps an input (an input file inside it, or an input glob that reaches into
  it) is refused before any work.
- A run writes into a staging directory beside the output, `OUT.tmp-<run id>`, and replaces
  the output only once the new manifest is written: one rename that exchanges the two
  directories (Linux renameat2), after which the old output is deleted. A run that fails or is
  interrupted deletes its staging directory and leaves the previous output as it was.
- `--overwrite` deletes only what the old output's manifest lists and curate's own partial
  files (`<listed layout>.tmp-<hex>`). An output that holds anything else (a file, a directory,
  a symlink: never followed) is refused with its name, before any work; nothing is moved.
- One run per output at a time: `OUT.lock` beside it, held with flock(2) for the whole run and
  removed at the end; it records the run's staging directory, so a run killed with SIGKILL
  leaves nothing that the next run into that output does not clean up.

Local outputs only; an output on a remote filesystem (gs://, s3://) is checked and cleared in
place by `check_output` (the manifest's files only), without staging or lock.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import signal
import stat
import uuid
from dataclasses import dataclass, field

from pipeline import schema
from pipeline.config import ConfigError
from pipeline.stages.write import SAFE_BUCKET, SHARD_DIRS, shard_path

_PART = r"part-\d{5,}-of-\d{5,}\.parquet"
RUN_LOG = "logs/run.log"  # the run's full log (pipeline/progress.py RunLog), beside its manifest
_BUCKET = SAFE_BUCKET.pattern
# Every path (relative to OUT) a curate run writes, and the directories that hold them; also the
# mixture's hive directories of outputs written before the flat layout (mixture/bucket=<b>/part-*),
# which --overwrite replaces like any curate output.
LAYOUT = re.compile(
    rf"{re.escape(schema.MANIFEST_NAME)}|{re.escape(RUN_LOG)}|{re.escape(schema.DATASET_CARD)}"
    rf"|{schema.MIXTURE_DIR}/{_BUCKET}\.{_PART}|{schema.MIXTURE_DIR}/bucket={_BUCKET}/{_PART}"
    rf"|(?:{schema.REJECTED_DIR}|{schema.QUARANTINE_DIR}|{schema.ANNOTATED_DIR})/{_PART}"
)
PARTIAL = re.compile(rf"(?:{LAYOUT.pattern})\.tmp-[0-9a-f]{{32}}")  # a write cut short
LAYOUT_DIRS = re.compile(
    rf"{schema.MIXTURE_DIR}(?:/bucket={_BUCKET})?|{os.path.dirname(RUN_LOG)}"
    rf"|{schema.REJECTED_DIR}|{schema.QUARANTINE_DIR}|{schema.ANNOTATED_DIR}"
)
# What the staging directory and the lock are called, beside OUT.
STAGING_SUFFIX = ".tmp-"
LOCK_SUFFIX = ".lock"
MAX_MANIFEST_BYTES = 1 << 30
SHOW_FOREIGN = 3  # foreign paths named in the refusal


def is_remote(path: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*://", path) is not None


def show(path: str) -> str:
    """A path for a one-line message: control characters and undecodable bytes escaped."""
    return json.dumps(path)[1:-1]


class OutputError(ConfigError):
    """A problem with the output directory: one line, exit code 2."""


# ----------------------------------------------------------------------------- what is ours


def listed_in_manifest(root: str) -> set[str]:
    """The relative paths the manifest in `root` lists (itself included); empty when it is
    missing, not a regular file or not a curate manifest. Paths outside the layout are ignored."""
    path = os.path.join(root, schema.MANIFEST_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return set()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
            return set()
        with os.fdopen(fd, "rb", closefd=False) as f:
            manifest = json.loads(f.read())
        shards = manifest.get("shards") if isinstance(manifest, dict) else None
        if not isinstance(shards, list):
            return set()
        paths = {s.get("path") for s in shards if isinstance(s, dict)} | {_card_path(manifest)}
        # the run log is not listed (it is written to the end of the run): a manifest's run wrote it
        return {p for p in paths if isinstance(p, str) and LAYOUT.fullmatch(p)} | {
            schema.MANIFEST_NAME,
            RUN_LOG,
            schema.REPORT_NAME,
        }
    except (OSError, ValueError, RecursionError):
        return set()
    finally:
        os.close(fd)


def _card_path(manifest: dict):
    """The dataset card's path the manifest lists (None for a manifest from before cards)."""
    card = manifest.get("dataset_card")
    return card.get("path") if isinstance(card, dict) else None


@dataclass
class Contents:
    ours: list[str] = field(default_factory=list)  # regular files we may delete, relative
    foreign: list[str] = field(default_factory=list)  # anything else, relative ("dir/" for a directory)
    dirs: list[str] = field(default_factory=list)  # layout directories, relative, parents first

    @property
    def empty(self) -> bool:
        return not self.ours and not self.foreign


def scan(root: str, is_ours) -> Contents:
    """Sort what is under `root` into ours (regular files `is_ours(relpath)` accepts, inside
    layout directories) and foreign (everything else). Symlinks are never followed: a symlink is
    foreign, whatever it points to."""
    out = Contents()

    def walk(rel_dir: str) -> None:
        try:
            entries = sorted(os.scandir(os.path.join(root, rel_dir) if rel_dir else root), key=lambda e: e.name)
        except OSError:
            out.foreign.append(rel_dir + "/")
            return
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            try:
                if e.is_symlink():
                    out.foreign.append(rel)
                elif e.is_dir(follow_symlinks=False):
                    if LAYOUT_DIRS.fullmatch(rel):
                        out.dirs.append(rel)
                        walk(rel)
                    else:
                        out.foreign.append(rel + "/")
                elif e.is_file(follow_symlinks=False) and is_ours(rel):
                    out.ours.append(rel)
                else:
                    out.foreign.append(rel)
            except OSError:
                out.foreign.append(rel)

    walk("")
    return out


def old_output(root: str) -> Contents:
    """The files of the previous output at `root` that --overwrite may delete."""
    listed = listed_in_manifest(root)
    return scan(root, lambda rel: rel in listed or PARTIAL.fullmatch(rel) is not None)


def staged_files(rel: str) -> bool:
    """What a staging directory of ours may hold."""
    return LAYOUT.fullmatch(rel) is not None or PARTIAL.fullmatch(rel) is not None


def remove(root: str, contents: Contents) -> bool:
    """Delete our files (regular files only: symlinks are never followed), then the layout
    directories left empty and `root` itself if empty. Never raises; True when `root` is gone."""
    for rel in contents.ours:
        p = os.path.join(root, rel)
        try:
            if stat.S_ISREG(os.lstat(p).st_mode):
                os.unlink(p)
        except OSError:
            pass
    for rel in reversed(contents.dirs):
        try:
            os.rmdir(os.path.join(root, rel))
        except OSError:
            pass
    try:
        os.rmdir(root)
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def clear_staging(path: str) -> bool:
    """Delete a staging directory of ours, our files only."""
    if not os.path.isdir(path) or os.path.islink(path):
        return not os.path.lexists(path)
    return remove(path, scan(path, staged_files))


# ----------------------------------------------------------------------------- checks


def _foreign_message(path: str, foreign: list[str]) -> str:
    names = ", ".join(show(f) for f in foreign[:SHOW_FOREIGN])
    more = f" and {len(foreign) - SHOW_FOREIGN} more" if len(foreign) > SHOW_FOREIGN else ""
    return (
        f"output error: refusing to overwrite {path}: it holds {names}{more}, which its manifest does not"
        " list; move that out of the way first"
    )


def check_existing(path: str, root: str, overwrite: bool) -> Contents | None:
    """None when there is nothing at `root` (or an empty directory); else the old output's files
    that --overwrite replaces. Refuses a non-directory, a non-empty output without --overwrite,
    and any output holding something curate did not write."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputError(f"output error: {path}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"output error: {path} exists and is not a directory")
    try:
        nonempty = any(True for _ in os.scandir(root))
    except OSError as e:
        raise OutputError(f"output error: cannot list {path}: {e.strerror}") from None
    if not nonempty:
        return None
    if not overwrite:
        raise OutputError(f"output error: {path} is not empty; pass --overwrite to replace it")
    old = old_output(root)
    if old.foreign:
        raise OutputError(_foreign_message(path, old.foreign))
    return old


def check_parent(path: str, root: str) -> None:
    """The nearest existing ancestor of the output must be a directory we can write in."""
    a = os.path.dirname(root)
    while not os.path.lexists(a):
        a = os.path.dirname(a)
    if not os.path.isdir(a):
        raise OutputError(f"output error: cannot create {path}: {a} is not a directory")
    if not os.access(a, os.W_OK | os.X_OK):
        raise OutputError(f"output error: cannot create {path}: {a} is not writable")


def _pattern_regexes(pattern: str) -> list[re.Pattern]:
    """`pattern` as Beam's local filesystem matches it, absolute, as written and with symlinks
    in its literal directory prefix resolved."""
    from apache_beam.io.filesystem import FileSystem

    absolute = os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(pattern)))
    forms = {absolute}
    head = os.path.dirname(re.match(r"^[^[*?]*", absolute).group(0))
    if head and head != "/":
        forms.add(os.path.realpath(head) + absolute[len(head) :])
    return [re.compile(FileSystem.translate_pattern(f)) for f in forms]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _roots(path: str, root: str) -> set[str]:
    return {root, os.path.normpath(os.path.abspath(os.path.expanduser(path)))}


def check_input_patterns(path: str, root: str, sources) -> None:
    """Refuse an input glob that matches where curate writes (`--input 'w/**' --output w/out`),
    whether the output exists yet or not: a rerun would read the output as input."""
    probes = [schema.MANIFEST_NAME, schema.DATASET_CARD] + [shard_path(kind, "en", 0, 1) for kind in SHARD_DIRS]
    for src in sources:
        for pattern in src.paths:
            if is_remote(pattern) or not re.search(r"[*?\[]", pattern):  # a plain path: check_input_files
                continue
            for rx in _pattern_regexes(pattern):
                hit = next((p for r in _roots(path, root) for p in probes if rx.match(os.path.join(r, p))), None)
                if hit:
                    raise OutputError(
                        f"output error: input {show(pattern)} reaches into the output {path}"
                        f" (it would read {hit}); write the output elsewhere"
                    )


def check_input_files(path: str, root: str, specs) -> None:
    """Refuse an input file inside the output (symlinks resolved)."""
    roots = _roots(path, root)
    for s in specs:
        if is_remote(s.path):
            continue
        if any(_inside(os.path.realpath(s.path), r) or _inside(os.path.abspath(s.path), r) for r in roots):
            raise OutputError(
                f"output error: input file {show(s.path)} is inside the output {path}; write the output elsewhere"
            )


def check_bucket_names(config) -> None:
    """Bucket names become file names (mixture/<b>.part-*): refuse unsafe ones up front."""
    names = [("stages.langid.languages", n) for n in config.stages.langid.languages]
    names += [("stages.mixture.targets", n) for n in config.stages.mixture.targets]
    for key, n in names:
        if not SAFE_BUCKET.fullmatch(n):
            raise ConfigError(
                f"config error: {key}: {show(n)} cannot name a bucket (lowercase letters,"
                " digits, '-' and '_', at most 64)"
            )


def resolve(path: str) -> str:
    if not path.strip():
        raise OutputError("output error: the output path is empty")
    return os.path.realpath(os.path.expanduser(path))


def precheck(path: str, overwrite: bool, sources=()) -> None:
    """What can be checked before the inputs are listed (no side effects)."""
    if is_remote(path):
        return
    root = resolve(path)
    check_input_patterns(path, root, sources)
    check_parent(path, root)
    check_existing(path, root, overwrite)


# ----------------------------------------------------------------------------- the lock


def _lock(path: str, lock_path: str) -> int:
    """Take the output's lock: an fd holding flock(LOCK_EX) on `lock_path`. A second run is
    refused; a stale lock file (its run died) is simply taken over."""
    for _ in range(10):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OutputError(f"output error: cannot create {show(lock_path)}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_record(fd).get("pid")
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f" (pid {holder})" if isinstance(holder, int) else ""
                raise OutputError(
                    f"output error: another curate run{who} is writing {path}; wait for it to finish or stop it"
                ) from None
            raise OutputError(f"output error: cannot lock {show(lock_path)}: {e.strerror}") from None
        try:  # the holder before us may have removed the file after we opened it: lock the new one
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path, follow_symlinks=False))
        except OSError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise OutputError(f"output error: cannot lock {show(lock_path)}: it keeps changing")


def _read_record(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 1 << 16)
        rec = json.loads(data) if data.strip() else {}
        return rec if isinstance(rec, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_record(fd: int, record: dict) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(record).encode() + b"\n")


# ----------------------------------------------------------------------------- the swap

RENAME_EXCHANGE = 2  # <linux/fs.h>
AT_FDCWD = -100


def exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), a)


class _SignalsDeferred:
    """SIGINT and SIGTERM wait while the output is being swapped, and are delivered right after
    (Python runs signal handlers in the main thread, so blocking them there is not enough)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.pending: list[int] = []
        self.old = {}
        try:
            for s in self.SIGNALS:
                self.old[s] = signal.signal(s, lambda n, _f: self.pending.append(n))
        except ValueError:  # not the main thread: no handler of ours runs here anyway
            pass

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)
        for n in self.pending:
            signal.raise_signal(n)


class StagedOutput:
    """A local output being written: lock held, staging directory created (see the module doc).

    staged = StagedOutput.open(path, sources, specs, overwrite)
    try:
        ...write everything under staged.staging...
        staged.commit()
    finally:
        staged.close()   # not committed: the staging directory is deleted; the lock released
    """

    def __init__(self, path: str, root: str, overwrite: bool):
        self.path, self.root, self.overwrite = path, root, overwrite
        self.run_id = uuid.uuid4().hex[:12]
        self.staging = f"{root}{STAGING_SUFFIX}{self.run_id}"
        self.old_dir = f"{root}{STAGING_SUFFIX}{uuid.uuid4().hex[:12]}"  # where the old output goes, without renameat2
        self.lock_path = root + LOCK_SUFFIX
        self.fd: int | None = None
        self.committed = False
        self.previous: tuple[str, Contents] | None = None  # the old output after the swap, and its files
        self.notes: list[str] = []
        self.recorded: list[str] = []  # staging directory names in the lock file's record

    @classmethod
    def open(cls, path: str, sources, specs, overwrite: bool) -> StagedOutput:
        self = cls.prepare(path, sources, specs, overwrite)
        try:
            self.acquire()
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def prepare(cls, path: str, sources, specs, overwrite: bool) -> StagedOutput:
        """Every check, nothing created yet."""
        root = resolve(path)
        check_input_patterns(path, root, sources)
        check_input_files(path, root, specs)
        check_parent(path, root)
        check_existing(path, root, overwrite)
        return cls(path, root, overwrite)

    def acquire(self) -> None:
        """Take the lock, clean up after a dead run, create the staging directory. `close()`
        undoes whatever of it was done."""
        path, root = self.path, self.root
        try:
            os.makedirs(os.path.dirname(root), exist_ok=True)
        except OSError as e:
            raise OutputError(f"output error: cannot create {path}: {e.strerror}") from None
        self.fd = _lock(path, self.lock_path)
        dead = _read_record(self.fd)  # a run that died holding this lock (SIGKILL, power) left these
        ours = [os.path.basename(self.staging), os.path.basename(self.old_dir)]
        self.recorded = ours + [n for n in self._names(dead) if n not in ours]
        _write_record(self.fd, {"pid": os.getpid(), "output": root, "staging": self.recorded, "previous": ours[1]})
        self._clean_stale(dead)
        check_existing(path, root, self.overwrite)  # again, now that no other run can change it
        try:
            os.mkdir(self.staging, 0o755)
        except OSError as e:
            raise OutputError(f"output error: cannot write in {show(os.path.dirname(root))}: {e.strerror}") from None

    def _names(self, record: dict) -> list[str]:
        """The directory names a lock record lists that can only be ours: OUT.tmp-<12 hex>."""
        pattern = re.compile(re.escape(os.path.basename(self.root) + STAGING_SUFFIX) + r"[0-9a-f]{12}")
        names = record.get("staging") if isinstance(record.get("staging"), list) else []
        return [n for n in names if isinstance(n, str) and pattern.fullmatch(n)]

    def _clean_stale(self, record: dict) -> None:
        """Delete what a dead run recorded (our files only). Had it died between the two renames
        of a swap without renameat2 (OUT missing), its previous output is put back first."""
        parent = os.path.dirname(self.root)
        for name in self._names(record):
            d = os.path.join(parent, name)
            if name == record.get("previous") and not os.path.lexists(self.root) and listed_in_manifest(d):
                os.rename(d, self.root)
                continue
            clear_staging(d)

    def commit(self) -> None:
        """Put the staged output in place of the old one (the staged manifest must exist)."""
        if not os.path.isfile(os.path.join(self.staging, schema.MANIFEST_NAME)):
            raise OutputError(f"output error: the run wrote no {schema.MANIFEST_NAME}; {self.path} left as it was")
        old = check_existing_at_commit(self.path, self.root, self.overwrite)
        with _SignalsDeferred():
            if old is None:
                os.rename(self.staging, self.root)  # replaces an empty directory
                where = None
            elif exchange(self.staging, self.root):
                where = self.staging  # the old output is there now
            else:  # no renameat2: two renames, the output missing for an instant
                os.rename(self.root, self.old_dir)
                os.rename(self.staging, self.root)
                where = self.old_dir
            self.committed = True
            self.previous = (where, old) if where is not None else None
        self._remove_previous()

    def _remove_previous(self) -> None:
        if self.previous is None:
            return
        (where, contents), self.previous = self.previous, None
        if not remove(where, contents):
            self.notes.append(
                f"note: kept the previous output's directory, now {show(where)}: something"
                " curate did not write appeared in it during the run"
            )

    def close(self) -> None:
        """Delete the staging directory unless committed (else the old output, if still there),
        release and remove the lock."""
        self._remove_previous()
        if not self.committed and os.path.lexists(self.staging):
            clear_staging(self.staging)
            if os.path.lexists(self.staging):  # a writer thread of this process raced us: once more
                clear_staging(self.staging)
        if self.fd is not None:
            fd, self.fd = self.fd, None
            parent = os.path.dirname(self.root)
            left = [n for n in self.recorded if os.path.lexists(os.path.join(parent, n))]
            try:
                if left:  # something could not be deleted: keep it recorded for the next run
                    _write_record(fd, {"pid": None, "output": self.root, "staging": left, "previous": None})
                elif os.path.samestat(os.fstat(fd), os.stat(self.lock_path, follow_symlinks=False)):
                    os.unlink(self.lock_path)  # while still holding it: see _lock
            except OSError:
                pass
            os.close(fd)


def check_existing_at_commit(path: str, root: str, overwrite: bool) -> Contents | None:
    try:
        return check_existing(path, root, overwrite)
    except OutputError as e:
        raise OutputError(f"{e} (it changed during the run; the new output was discarded)") from None


# ----------------------------------------------------------------------------- in place (remote)


def check_output(path: str, overwrite: bool) -> None:
    """For an output written in place (a remote filesystem; `curate submit`): refuse a non-empty
    output unless --overwrite, refuse one holding anything its manifest does not list, and
    delete the listed files."""
    if not is_remote(path):
        root = resolve(path)
        check_parent(path, root)
        old = check_existing(path, root, overwrite)
        if old is not None:
            remove(root, old)
            os.makedirs(root, exist_ok=True)
        return
    from apache_beam.io.filesystems import FileSystems

    base = path.rstrip("/")
    try:
        entries = [m.path for m in FileSystems.match([FileSystems.join(base, "**")])[0].metadata_list]
    except Exception:  # noqa: BLE001 - nothing there
        entries = []
    if not entries:
        return
    if not overwrite:
        raise OutputError(f"output error: {path} is not empty; pass --overwrite to replace it")
    listed: set[str] = set()
    try:
        with FileSystems.open(FileSystems.join(base, schema.MANIFEST_NAME), compression_type="uncompressed") as f:
            m = json.loads(f.read(MAX_MANIFEST_BYTES))
        listed = {
            p
            for p in [s.get("path") for s in m["shards"]] + [_card_path(m)]
            if isinstance(p, str) and LAYOUT.fullmatch(p)
        }
        listed.add(schema.MANIFEST_NAME)
    except Exception:  # noqa: BLE001 - no readable manifest: nothing is ours
        pass
    rel = {e: e[len(base) + 1 :] for e in entries}
    foreign = sorted(r for r in rel.values() if r not in listed and not PARTIAL.fullmatch(r))
    if foreign:
        raise OutputError(_foreign_message(path, foreign))
    FileSystems.delete(sorted(rel, key=lambda e: rel[e] == schema.MANIFEST_NAME, reverse=True))
