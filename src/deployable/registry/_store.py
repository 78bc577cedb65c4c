"""The :class:`Registry`: one store class over the database, a session and a short transaction per use case.

Files are written to the artifact folder before the transaction that names them commits; version numbers are
assigned inside the writing transaction (``MAX(number) + 1`` under a unique constraint, retried on a conflict).
"""

from __future__ import annotations

import getpass
import json
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from deployable.core.errors import DeployableError, did_you_mean
from deployable.core.hashing import hash_json, sha256_file
from deployable.core.locks import build_once
from deployable.registry._artifacts import ArtifactStore
from deployable.registry._collect import collect
from deployable.registry._engine import make_engine, mask, parse_url, scrub, unreachable, upgrade
from deployable.registry._records import AliasMove, ModelVersion, Problem, StoredFile, TargetRelease
from deployable.registry._schema import AliasRow, EventRow, FileRow, ModelRow, TargetRow, VersionRow

ARTIFACTS_ENV = "DEPLOYABLE_REGISTRY_ARTIFACTS"
_RETRIES = 60
_REF = re.compile(r"^(?P<name>[^@]+)@(?P<which>[^@]+)$")


class PromotionRefused(Exception):
    """The version's verdict does not pass the targets a promotion asked for; ``failures`` lists why."""

    exit_code = 1

    def __init__(self, message: str, failures: list[str]):
        self.message = message
        self.failures = failures
        super().__init__(message)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def parse_ref(ref: str) -> tuple[str, str]:
    m = _REF.match(ref.strip())
    if not m:
        raise DeployableError(f"registry: '{ref}' is not NAME@ALIAS or NAME@VERSION", hint="e.g. tickets@production")
    return m["name"], m["which"]


class Registry:
    """A model registry: a database (SQLite file or any SQLAlchemy URL) and a folder of content-addressed files.

    Args:
        location: a SQLAlchemy URL, or a path taken as a SQLite file.
        artifacts: the artifact folder; default ``$DEPLOYABLE_REGISTRY_ARTIFACTS``, else ``<db>-artifacts`` beside
            a SQLite file.
        create: make the database when it does not exist (only ``release`` does; others refuse a missing file).
    """

    def __init__(self, location: str | Path, *, artifacts: str | Path | None = None, create: bool = False):
        import os

        self.url = parse_url(location)
        self.shown = mask(self.url)
        if artifacts is None:
            artifacts = os.environ.get(ARTIFACTS_ENV)
        if artifacts is None:
            if self.url.get_backend_name() != "sqlite" or not self.url.database:
                raise DeployableError(
                    f"registry {self.shown}: no artifact folder given",
                    hint=f"pass --artifacts PATH, set {ARTIFACTS_ENV}, or registry.artifacts in the config",
                )
            db = Path(self.url.database)
            artifacts = db.with_name(f"{db.stem}-artifacts")
        self.artifacts = ArtifactStore(artifacts)
        self._create = create
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        """The engine, made (and the schema migrated) on first use: a release checks its run folder first, so a
        refused release writes nothing, not even an empty database."""
        if self._engine is None:
            engine = make_engine(self.url, create=self._create)
            try:
                upgrade(engine, self.url)
            except BaseException:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    def __repr__(self) -> str:
        return f"Registry({self.shown!r}, artifacts={str(self.artifacts.root)!r})"

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------------------------------------

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """A session in one short transaction; a database failure is a one-line user error, the password masked."""
        try:
            with self._session() as s, s.begin():
                yield s
        except DBAPIError as exc:
            raise self._db_error(exc) from exc

    def _db_error(self, exc: DBAPIError) -> DeployableError:
        if isinstance(exc, OperationalError):
            return unreachable(self.url, exc)
        return DeployableError(f"registry {self.shown}: {scrub(str(exc.orig), self.url).splitlines()[0]}")

    def _model(self, s: Session, name: str) -> ModelRow:
        row = s.scalar(select(ModelRow).where(ModelRow.name == name))
        if row is None:
            names = list(s.scalars(select(ModelRow.name)))
            hint = did_you_mean(name, names) if names else "the registry holds no model yet"
            raise DeployableError(f"registry: no model named '{name}'", hint=hint)
        return row

    def _version(self, s: Session, model: ModelRow, number: int) -> VersionRow:
        row = s.scalar(select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.number == number))
        if row is None:
            numbers = list(s.scalars(select(VersionRow.number).where(VersionRow.model_id == model.id)))
            have = f"versions: {', '.join(map(str, sorted(numbers)))}" if numbers else "it has no version"
            raise DeployableError(f"registry: {model.name} has no version {number}", hint=have)
        return row

    def _record(self, s: Session, model: ModelRow, v: VersionRow, *, files: bool = True) -> ModelVersion:
        targets = s.scalars(select(TargetRow).where(TargetRow.version_id == v.id).order_by(TargetRow.target))
        rows = s.scalars(select(FileRow).where(FileRow.version_id == v.id).order_by(FileRow.role, FileRow.path))
        aliases = s.scalars(select(AliasRow).where(AliasRow.version_id == v.id).order_by(AliasRow.alias))
        return ModelVersion(
            name=model.name,
            number=v.number,
            created_at=v.created_at,
            created_by=v.created_by,
            run_folder=v.run_folder,
            verdict_status=v.verdict_status,
            targets=tuple(
                TargetRelease(t.target, t.variant, t.passed, tuple(json.loads(t.failed_checks))) for t in targets
            ),
            lineage=json.loads(v.lineage),
            files=tuple(StoredFile(f.role, f.path, f.sha256, f.size) for f in rows) if files else (),
            missing=tuple(json.loads(v.missing)),
            aliases=tuple(f"{a.alias} ({a.target})" for a in aliases),
        )

    def _resolve(self, s: Session, ref: str, target: str | None) -> tuple[ModelRow, VersionRow]:
        name, which = parse_ref(ref)
        model = self._model(s, name)
        if which.isdigit():
            return model, self._version(s, model, int(which))
        q = select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.alias == which)
        rows = list(s.scalars(q))
        if not rows:
            known = sorted(set(s.scalars(select(AliasRow.alias).where(AliasRow.model_id == model.id))))
            raise DeployableError(
                f"registry: {name} has no alias '{which}'",
                hint=did_you_mean(which, known) if known else "promote a version first",
            )
        if target is not None:
            rows = [r for r in rows if r.target == target]
            if not rows:
                raise DeployableError(f"registry: {name}@{which} is not set for target '{target}'")
        if len({r.version_id for r in rows}) > 1:
            where = ", ".join(f"{r.target}" for r in rows)
            raise DeployableError(
                f"registry: {name}@{which} points to different versions per target ({where})", hint="pass --target"
            )
        return model, s.get(VersionRow, rows[0].version_id)  # type: ignore[return-value]

    # -- use cases ----------------------------------------------------------------------------------------------

    def release(self, run_folder: str | Path) -> ModelVersion:
        """Register a run folder's chosen variants, evidence and lineage as the next version of its model."""
        c = collect(run_folder)
        if not c.name.strip() or "@" in c.name:
            raise DeployableError(
                f"release: the project name '{c.name}' cannot name a model in the registry (it must not contain '@')",
                hint="rename it in the config's name: key",
            )
        self.engine  # noqa: B018 - reach the database before writing any file
        stored: list[tuple[str, str, str, int]] = []
        for role, rel, path in c.files:  # files first, each fsynced and renamed: the rows below name only these
            digest, size = self.artifacts.put(path)
            stored.append((role, rel, digest, size))
        folder = str(Path(run_folder).resolve())
        for attempt in range(_RETRIES):
            try:
                with self._session() as s, s.begin():
                    model = s.scalar(select(ModelRow).where(ModelRow.name == c.name).with_for_update())
                    if model is None:
                        model = ModelRow(name=c.name, created_at=_now())
                        s.add(model)
                        s.flush()
                    number = (
                        s.scalar(select(func.max(VersionRow.number)).where(VersionRow.model_id == model.id)) or 0
                    ) + 1
                    v = VersionRow(
                        model_id=model.id,
                        number=number,
                        created_at=_now(),
                        created_by=_user(),
                        run_folder=folder,
                        verdict_status=c.verdict_status,
                        lineage=json.dumps(c.lineage, sort_keys=True, default=str),
                        missing=json.dumps(c.missing),
                    )
                    s.add(v)
                    s.flush()
                    for target, variant, passed, failed in c.targets:
                        s.add(
                            TargetRow(
                                version_id=v.id,
                                target=target,
                                variant=variant,
                                passed=passed,
                                failed_checks=json.dumps(failed),
                            )
                        )
                    for role, rel, digest, size in stored:
                        s.add(FileRow(version_id=v.id, role=role, path=rel, sha256=digest, size=size))
                    s.flush()
                    record = self._record(s, model, v)
                return record
            except IntegrityError:
                # another writer took this number (or created the model) first: rolled back, read MAX again
                time.sleep(random.uniform(0.001, 0.02) * (1 + attempt % 5))
            except DBAPIError as exc:
                raise self._db_error(exc) from exc
        raise DeployableError(f"registry {self.shown}: could not assign a version number after {_RETRIES} tries")

    def _move(
        self,
        s: Session,
        model: ModelRow,
        alias: str,
        target: str,
        to: VersionRow,
        *,
        action: str,
        reason: str,
        forced: bool,
    ) -> AliasMove:
        row = s.get(AliasRow, (model.id, alias, target), with_for_update=True)
        before = s.get(VersionRow, row.version_id).number if row is not None else None  # type: ignore[union-attr]
        if row is None:
            s.add(AliasRow(model_id=model.id, alias=alias, target=target, version_id=to.id))
        else:
            row.version_id = to.id
        evidence = s.scalar(
            select(FileRow.sha256).where(
                FileRow.version_id == to.id, FileRow.role == "evidence", FileRow.path == "report.html"
            )
        )
        link = str(self.artifacts.path(evidence)) if evidence else f"{model.name}@{to.number}"
        event = EventRow(
            model_id=model.id,
            at=_now(),
            user=_user(),
            action=action,
            alias=alias,
            target=target,
            from_version=before,
            to_version=to.number,
            reason=reason,
            forced=forced,
            evidence=link,
        )
        s.add(event)
        return _move_record(event)

    def promote(
        self,
        name: str,
        number: int,
        alias: str,
        *,
        targets: list[str] | None = None,
        force: bool = False,
        reason: str = "",
    ) -> list[AliasMove]:
        """Point ``alias`` at version ``number`` for ``targets`` (default: every target of the version).

        Raises:
            PromotionRefused: the verdict does not pass a requested target and ``force`` is not set.
        """
        if force and not reason.strip():
            raise DeployableError("promote: --force needs --reason saying why the gate is overridden")
        _check_name("alias", alias)
        try:
            with self._session() as s, s.begin():
                model = self._model(s, name)
                v = self._version(s, model, number)
                rows = {t.target: t for t in s.scalars(select(TargetRow).where(TargetRow.version_id == v.id))}
                chosen = _targets(rows, targets, f"{name} {number}")
                failures = [line for t in chosen if not rows[t].passed for line in json.loads(rows[t].failed_checks)]
                if failures and not force:
                    raise PromotionRefused(
                        f"promote: {name} {number} did not pass the gate for "
                        f"{', '.join(t for t in chosen if not rows[t].passed)}"
                        " (pass --force --reason TEXT to override; the override is recorded)",
                        failures,
                    )
                return [
                    self._move(
                        s, model, alias, t, v, action="promote", reason=reason, forced=force and not rows[t].passed
                    )
                    for t in chosen
                ]
        except DBAPIError as exc:
            raise self._db_error(exc) from exc

    def rollback(
        self, name: str, alias: str, *, reason: str, targets: list[str] | None = None, to: int | None = None
    ) -> list[AliasMove]:
        """Move ``alias`` back to the version it pointed to before its last move (or to version ``to``)."""
        if not reason.strip():
            raise DeployableError("rollback: --reason is required (it is recorded in the history)")
        try:
            with self._session() as s, s.begin():
                model = self._model(s, name)
                rows = list(s.scalars(select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.alias == alias)))
                if not rows:
                    raise DeployableError(f"rollback: {name} has no alias '{alias}'")
                have = {r.target: r for r in rows}
                chosen = _targets(have, targets, f"{name}@{alias}")
                moves = []
                nothing = []
                for t in chosen:
                    if to is not None:
                        dest = self._version(s, model, to)
                        if s.get(TargetRow, (dest.id, t)) is None:
                            raise DeployableError(f"rollback: {name} {to} has no target '{t}'", hint="pass --target")
                    else:
                        last = s.scalar(
                            select(EventRow)
                            .where(EventRow.model_id == model.id, EventRow.alias == alias, EventRow.target == t)
                            .order_by(EventRow.id.desc())
                            .limit(1)
                        )
                        if last is None or last.from_version is None:
                            nothing.append(t)
                            continue
                        dest = self._version(s, model, last.from_version)
                    moves.append(self._move(s, model, alias, t, dest, action="rollback", reason=reason, forced=False))
                if nothing and (targets or not moves):  # without --target, targets never moved before are left
                    raise DeployableError(
                        f"rollback: {name}@{alias} has no earlier version to go back to for {', '.join(nothing)}",
                        hint="pass --to N",
                    )
                return moves
        except DBAPIError as exc:
            raise self._db_error(exc) from exc

    def versions(self, name: str) -> list[ModelVersion]:
        with self._tx() as s:
            model = self._model(s, name)
            rows = s.scalars(select(VersionRow).where(VersionRow.model_id == model.id).order_by(VersionRow.number))
            return [self._record(s, model, v, files=False) for v in rows]

    def history(self, name: str) -> list[AliasMove]:
        """Every alias move of ``name``, newest first."""
        with self._tx() as s:
            model = self._model(s, name)
            q = select(EventRow).where(EventRow.model_id == model.id).order_by(EventRow.id.desc())
            return [_move_record(e) for e in s.scalars(q)]

    def show(self, ref: str, *, target: str | None = None) -> ModelVersion:
        with self._tx() as s:
            model, v = self._resolve(s, ref, target)
            return self._record(s, model, v)

    def load(self, ref: str, *, target: str) -> Any:
        """The predictor of ``ref`` for ``target``, after checking every file's sha256 and scanning the model files.

        Raises:
            DeployableError: a file is missing or its sha256 differs (one line: file, expected, actual).
        """
        from deployable.audit.guard import scan_model
        from deployable.models import load_predictor

        version = self.show(ref, target=target)
        t = version.target(target)
        if t is None or not t.variant:
            known = ", ".join(x.target for x in version.targets)
            raise DeployableError(
                f"registry: {version.name} {version.number} has no target '{target}'", hint=f"targets: {known}"
            )
        role = f"variant:{t.variant}"
        files = [(f.path, f.sha256) for f in version.files if f.role == role]
        for _rel, digest in files:
            actual = self.artifacts.check(digest)
            if actual is not None:
                raise _tampered(self.artifacts.path(digest), digest, actual)
        key = hash_json([version.name, version.number, t.variant, files])[:24]
        folder = self.artifacts.root / "checkouts" / key
        done = lambda p: (p / ".done").is_file()  # noqa: E731
        build_once(folder, lambda tmp: _checkout(self.artifacts, files, tmp), finished=done)
        for rel, digest in files:  # the files that are loaded, checked every time
            p = folder / rel
            actual = sha256_file(p) if p.is_file() else "missing"
            if actual != digest:
                raise _tampered(p, digest, actual)
        variant = version.lineage["variants"][t.variant]
        spec = _relocate(variant["spec"], variant.get("paths", {}), folder)
        scan_model(spec, refuse=True)
        return load_predictor(spec)

    def baseline(self, ref: str, *, target: str, split: str, fingerprint: str) -> tuple[Path, str]:
        """A released version as a gate baseline: a folder holding its ``results.json`` and
        ``predictions/<variant>.parquet`` (checked against their sha256), and the variant it ships to ``target``.

        Raises:
            DeployableError: the version was evaluated on other ``split`` samples (both fingerprints named), or
                a stored file is missing or changed.
        """
        version = self.show(ref, target=target)
        t = version.target(target)
        if t is None or not t.variant:
            raise DeployableError(f"registry: {version.name} {version.number} has no target '{target}'")
        theirs = (version.lineage.get("dataset_fingerprints") or {}).get(split)
        if theirs != fingerprint:
            raise DeployableError(
                f"policy.baseline.registry: {version.name} {version.number} was evaluated on a '{split}' split with "
                f"fingerprint {theirs}, this run's is {fingerprint}",
                hint="compare on the same test split: release a run of the baseline on this data",
            )
        wanted = {"results.json", f"predictions/{t.variant}.parquet"}
        files = [(f.path, f.sha256) for f in version.files if f.role == "evidence" and f.path in wanted]
        if len(files) != len(wanted):
            raise DeployableError(
                f"registry: {version.name} {version.number} has no stored test predictions of '{t.variant}'"
            )
        for _rel, digest in files:
            actual = self.artifacts.check(digest)
            if actual is not None:
                raise _tampered(self.artifacts.path(digest), digest, actual)
        folder = self.artifacts.root / "checkouts" / hash_json(["evidence", version.name, version.number, files])[:24]
        done = lambda p: (p / ".done").is_file()  # noqa: E731
        build_once(folder, lambda tmp: _checkout(self.artifacts, files, tmp), finished=done)
        return folder, t.variant

    def verify(self) -> list[Problem]:
        """Every row against the files: each problem found (an empty list: the registry is consistent)."""
        problems: list[Problem] = []
        checked: dict[str, str | None] = {}
        with self._tx() as s:
            models = {m.id: m.name for m in s.scalars(select(ModelRow))}
            versions = {v.id: v for v in s.scalars(select(VersionRow))}
            targets = list(s.scalars(select(TargetRow)))
            files = list(s.scalars(select(FileRow)))
            aliases = list(s.scalars(select(AliasRow)))
            events = list(s.scalars(select(EventRow)))
        label = {vid: f"{models.get(v.model_id, '?')} {v.number}" for vid, v in versions.items()}
        roles = {(f.version_id, f.role) for f in files}
        for f in files:
            if f.sha256 not in checked:
                checked[f.sha256] = self.artifacts.check(f.sha256)
            actual = checked[f.sha256]
            if actual is not None:
                problems.append(
                    Problem(
                        "file",
                        f"{label.get(f.version_id, f.version_id)}: {f.role} {f.path}: "
                        f"{self.artifacts.path(f.sha256)} expected sha256 {f.sha256}, found {actual}",
                    ),
                )
        for t in targets:
            if t.variant and (t.version_id, f"variant:{t.variant}") not in roles:
                problems.append(
                    Problem(
                        "version",
                        f"{label[t.version_id]}: target {t.target} ships '{t.variant}', which has no stored files",
                    )
                )
        for vid in versions:
            if (vid, "evidence") not in roles:
                problems.append(Problem("version", f"{label[vid]}: no evidence files"))
        have_targets = {(t.version_id, t.target) for t in targets}
        for a in aliases:
            if a.version_id not in versions:
                problems.append(
                    Problem("alias", f"{models.get(a.model_id)}@{a.alias} ({a.target}) points to a missing version")
                )
            elif (a.version_id, a.target) not in have_targets:
                problems.append(
                    Problem(
                        "alias", f"{models.get(a.model_id)}@{a.alias}: {label[a.version_id]} has no target {a.target}"
                    )
                )
        last: dict[tuple[int, str, str], EventRow] = {}
        for e in events:
            last[(e.model_id, e.alias, e.target)] = e
        for a in aliases:
            e = last.get((a.model_id, a.alias, a.target))
            if e is None or (a.version_id in versions and versions[a.version_id].number != e.to_version):
                problems.append(
                    Problem(
                        "history",
                        f"{models.get(a.model_id)}@{a.alias} ({a.target}): the alias "
                        "disagrees with its last recorded move",
                    )
                )
        return problems

    def gc(self, *, min_age_s: float = 3600.0) -> list[str]:
        """Remove artifact files no row names (older than ``min_age_s``) and stale checkouts; the removed digests."""
        with self._tx() as s:
            named = set(s.scalars(select(FileRow.sha256).distinct()))
        return self.artifacts.remove_unnamed(named, min_age_s=min_age_s)


def _targets(rows: dict[str, Any], asked: list[str] | None, what: str) -> list[str]:
    if not asked:
        return sorted(rows)
    for t in asked:
        if t not in rows:
            raise DeployableError(f"registry: {what} has no target '{t}'", hint=did_you_mean(t, rows))
    return list(dict.fromkeys(asked))


def _check_name(what: str, value: str) -> None:
    if not value or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value) or value.isdigit():
        raise DeployableError(
            f"registry: '{value}' is not a valid {what} name", hint="letters, digits, '.', '_' and '-', not only digits"
        )


def _move_record(e: EventRow) -> AliasMove:
    return AliasMove(**{name: getattr(e, name) for name in AliasMove.__dataclass_fields__})


def _tampered(path: Path, expected: str, actual: str) -> DeployableError:
    return DeployableError(
        f"registry: {path}: expected sha256 {expected}, found {actual}",
        hint="the stored file was changed or removed; run deployable registry verify",
    )


def _checkout(store: ArtifactStore, files: list[tuple[str, str]], folder: Path) -> None:
    store.materialize(files, folder)
    (folder / ".done").write_text("")


def _relocate(spec: dict[str, Any], moved: dict[str, str], folder: Path) -> dict[str, Any]:
    """The variant's spec with every path it names moved into the checkout (``moved``: original -> relative)."""
    roots = sorted(((Path(k), v) for k, v in moved.items()), key=lambda kv: -len(kv[0].parts))

    def move(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        if isinstance(v, list):
            return [move(x) for x in v]
        if isinstance(v, str) and Path(v).is_absolute():
            for root, rel in roots:
                if Path(v) == root or root in Path(v).parents:
                    return str((folder / rel / Path(v).relative_to(root)).resolve())
        return v

    return move(spec)
