"""tunekit push: a run's model as one self-contained folder (model files, model card, metrics),
uploaded to a Hub repo with huggingface_hub, or written to a local folder.

Order matters: everything a user can get wrong and that costs nothing to check (repo id, the
run, the files, the token) is checked before anything slow (merging an adapter) or remote.
The access token goes to HfApi and nowhere else: it is never printed, logged or written.
What ships is an allowlist of the model folder (hub_folder.model_plan); the plan is rewritten
so no path of this machine is in it, then scanned for secrets and such paths before a byte is
written or sent, for --to, --repo and --dry-run alike.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tunekit.errors import TunekitError
from tunekit.shipping.hub_folder import (Plan, json_bytes, listing, local_roots, localize, model_plan,
                                         portable_json, portable_recipe, scan_plan, shipped_base, verify_tree,
                                         write_plan)

METRICS_PATH = "eval/metrics.json"  # where the run's metrics go in the shipped folder


class HubError(TunekitError):
    """The Hub refused or failed a request."""


@dataclass(frozen=True)
class PushOptions:
    run: str
    repo_id: Optional[str] = None
    to: Optional[Path] = None
    private: bool = False
    revision: Optional[str] = None
    message: Optional[str] = None
    merge: bool = False
    allow_pickle: bool = False
    dry_run: bool = False
    overwrite: bool = False
    base_model: Optional[str] = None


def check_repo_id(repo_id: str, what: str = "repo id") -> None:
    """OWNER/NAME by the Hub's rules (the client's own validator, plus exactly one '/')."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    hint = "write it as OWNER/NAME, e.g. my-name/sentiment-bert (letters, digits, '-', '_' and '.')"
    if repo_id.count("/") != 1:
        raise TunekitError(f"invalid {what} {repo_id!r}: it must be OWNER/NAME, with exactly one '/'", hint)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise TunekitError(f"invalid {what} {repo_id!r}: {str(exc).splitlines()[0]}", hint) from None


def hub_model_id(ref: Optional[str]) -> Optional[str]:
    """The recipe's model reference if it is a Hub id (not a local folder or pkg://), else None."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not ref or "://" in ref or ref.startswith(("/", ".", "~")) or Path(ref).expanduser().exists():
        return None
    try:
        validate_repo_id(ref)
    except HFValidationError:
        return None
    return ref


def resolve_token() -> str:
    """HF_TOKEN, else the stored login. The error names where a token comes from, never a value."""
    from huggingface_hub import get_token

    try:
        token = get_token()
    except Exception as exc:  # an OIDC exchange the user opted into failed
        raise TunekitError(f"could not get an access token: {type(exc).__name__}",
                           "check HF_OIDC_RESOURCE, or set HF_TOKEN instead") from None
    if not token:
        raise TunekitError("no access token for the Hub: HF_TOKEN is not set and there is no stored login",
                           "export HF_TOKEN=<a token with write access>, or run `hf auth login`; "
                           "--dry-run and --to DIR need no token")
    return token


def known_token() -> Optional[str]:
    """The token this machine would push with (HF_TOKEN, else the stored login), read without a
    network call, for the secret scan of --to and --dry-run: it must not ship there either."""
    from huggingface_hub import constants

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token:
        try:
            token = Path(constants.HF_TOKEN_PATH).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            token = None
    return token or None


def _check_options(opts: PushOptions) -> None:
    if (opts.repo_id is None) == (opts.to is None):
        raise TunekitError("give either --repo OWNER/NAME or --to DIR",
                           "e.g. tunekit push runs/sentiment --repo my-name/sentiment-bert")
    if opts.repo_id is not None:
        check_repo_id(opts.repo_id)
    if opts.base_model is not None:
        check_repo_id(opts.base_model, "--base-model")
    remote_only = [name for name, given in (("--private", opts.private), ("--revision", opts.revision),
                                            ("--message", opts.message)) if given]
    if opts.to is not None and remote_only:
        raise TunekitError(f"{', '.join(remote_only)} only apply to an upload (--repo), not to --to DIR",
                           "drop them, or push with --repo OWNER/NAME")
    if opts.repo_id is not None and opts.overwrite:
        raise TunekitError("--overwrite applies to --to DIR", "drop it: an upload adds a commit, it replaces nothing")


def _check_target(to: Path, info, overwrite: bool) -> None:
    """--to: never the run, a parent of it or its model folder; replaced only when tunekit made it."""
    from tunekit.ownership import check_output, protected_paths

    check_output(to, overwrite, protected_paths(info), "--to")


def _read_run(info) -> tuple[dict, Optional[dict], Optional[str], Optional[Path]]:
    """The run's manifest, metrics (and their file) and resolved recipe; empty for a bare model folder."""
    from tunekit.runs import read_json

    run = info.run
    if run is None:
        return {}, None, None, None
    manifest = read_json(run.manifest) if run.manifest.is_file() else {}
    metrics_file = run.eval_dir / "metrics.json"
    metrics = read_json(metrics_file) if metrics_file.is_file() else None
    recipe = run.resolved_recipe.read_text(encoding="utf-8") if run.resolved_recipe.is_file() else None
    return manifest, metrics, recipe, metrics_file if metrics is not None else None


def default_message(opts: PushOptions, info, metrics: Optional[dict]) -> str:
    from tunekit.shipping.model_card import headline

    name = Path(opts.run).resolve().name
    score = headline(metrics, info.task) if metrics else None
    return f"tunekit push {name}: {info.task}{', ' + score if score else ''}"


def _adapter_type(model_dir: Path) -> Optional[str]:
    from tunekit.runs import read_json

    config = model_dir / "adapter_config.json"
    return (read_json(config).get("peft_type") or None) if config.is_file() else None


def _card_facts(opts: PushOptions, info, weights: str, manifest: dict, metrics: Optional[dict],
                recipe: Optional[str], base: Optional[str]):
    from tunekit.shipping.model_card import CardFacts

    # --to: the snippets load the folder by its name (its full path is this machine's business)
    return CardFacts(task=info.task, load_ref=opts.repo_id or opts.to.name, weights=weights,
                     title=opts.repo_id.split("/")[1] if opts.repo_id else (info.recipe_name or opts.to.name),
                     base_model=base, base_model_id=opts.base_model or hub_model_id(info.base_model),
                     peft_type=_adapter_type(info.model_dir),
                     label_names=info.label_names if info.task == "classification" else [],
                     manifest=manifest, metrics=metrics, recipe_yaml=recipe, repo_id=opts.repo_id)


def ship(opts: PushOptions, say: Callable[[str], None] = lambda _: None) -> dict:
    """Check, build and ship the folder; return what happened (files, sizes, where it went)."""
    from tunekit.model_info import find_model
    from tunekit.shipping.model_card import build_card

    _check_options(opts)
    info = find_model(opts.run)
    if opts.to is not None:
        _check_target(opts.to, info, opts.overwrite)
    if opts.merge and not info.is_adapter:
        raise TunekitError(f"--merge: {info.model_dir} holds full weights, there is no adapter to merge",
                           "drop --merge: the model ships as it is")
    # the allowlist; refuses links and pickle weights before anything slow
    plan, skipped = model_plan(info.model_dir, opts.allow_pickle)
    token = None
    if opts.repo_id is not None and not opts.dry_run:
        token = resolve_token()
        _check_online()
    base = shipped_base(info, opts.base_model, opts.to)  # a local base: by a relative path or its name
    manifest, metrics, recipe, metrics_file = _read_run(info)
    weights = "adapter" if info.is_adapter else "full"
    with tempfile.TemporaryDirectory(prefix="tunekit-push-") as tmp:
        if opts.merge:
            from tunekit.pipeline.adapters import merge_adapter

            scan_plan(plan, token or known_token())  # a secret is refused before the slow merge too
            say(f"merging the adapter in {info.model_dir} into its base model")
            merged = merge_adapter(info.model_dir, Path(tmp) / "merged")
            plan, _ = model_plan(merged, opts.allow_pickle)
            weights = "merged"
        localize(plan, info, base, opts.to)  # no local path of this machine in what ships
        recipe = portable_recipe(recipe)
        plan["README.md"] = build_card(_card_facts(opts, info, weights, manifest, metrics, recipe, base)).encode()
        if metrics_file is not None:
            plan[METRICS_PATH] = json_bytes(portable_json(metrics))
        # secrets (by shape, and the token) and this machine's folders: refused before anything is written
        scan_plan(plan, token or known_token(), local_roots(info, opts.to))
        files = listing(plan)
        result = {"run": opts.run, "model": str(info.model_dir), "weights": weights, "files": files,
                  "total_size": sum(f["size"] for f in files), "skipped": skipped, "dry_run": opts.dry_run}
        if opts.to is not None:
            result["to"] = str(opts.to)
            if not opts.dry_run:
                _write_local(plan, opts.to)
            return result
        message = opts.message or default_message(opts, info, metrics)
        result.update(repo=opts.repo_id, revision=opts.revision or "main", private=opts.private, message=message)
        if opts.dry_run:
            return result
        stage = Path(tmp) / "stage"
        stage.mkdir()
        write_plan(plan, stage, link=True)
        verify_tree(stage, token)
        say(f"uploading {len(files)} files to {opts.repo_id}")
        result.update(upload(stage, opts.repo_id, token, opts.private, opts.revision, message))
        return result


def _write_local(plan: Plan, to: Path) -> None:
    from tunekit.runs import atomic_dir

    from tunekit.ownership import write_marker

    with atomic_dir(to) as tmp:  # a reader sees the old folder or the finished new one
        write_plan(plan, tmp)
        verify_tree(tmp)
        write_marker(tmp, "push")  # tunekit's folder: a later --overwrite may replace it


def _check_online() -> None:
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise TunekitError("offline mode is on (HF_HUB_OFFLINE is set): push needs to reach the Hub",
                           "unset HF_HUB_OFFLINE for this command, or use --dry-run / --to DIR")


def upload(folder: Path, repo_id: str, token: str, private: bool, revision: Optional[str], message: str) -> dict:
    """create_repo (exist_ok) -> create_branch when a new branch is named -> upload_folder, one commit.
    The client reads its endpoint from HF_ENDPOINT."""
    import httpx2  # huggingface_hub's HTTP client: its transport errors are not OSErrors
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(endpoint=constants.ENDPOINT, token=token)
    try:
        # private=None leaves a new repo to its namespace's default (an org may default to private);
        # an existing repo keeps its visibility either way
        repo_url = api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        if revision and revision != "main" and not revision.startswith("refs/"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        # delete_patterns="*": the revision ends up holding exactly the shipped folder. Files left by
        # an earlier push (an adapter before a merged model, old pickle weights) would otherwise
        # sit beside the new ones and confuse every loader. The client keeps .gitattributes.
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=revision,
                                   commit_message=message, delete_patterns="*")
    except HfHubHTTPError as exc:
        raise hub_error(exc, repo_id, revision) from None
    except OfflineModeIsEnabled:
        raise TunekitError("offline mode is on (HF_HUB_OFFLINE is set): push needs to reach the Hub",
                           "unset HF_HUB_OFFLINE for this command") from None
    except ValueError as exc:  # the Hub's check of README.md metadata, raised before any upload
        if "README.md" not in str(exc):
            raise
        raise HubError(f"the Hub refused the model card: {_one_line(str(exc).replace(chr(10), ' '))}",
                       "if it names base_model, pass --base-model OWNER/NAME (the base's Hub id); "
                       "otherwise it is a tunekit bug: please report it") from None
    except (OSError, httpx2.TransportError) as exc:  # refused connection, DNS, TLS, timeouts
        raise HubError(f"cannot reach the Hub at {constants.ENDPOINT}: {_one_line(str(exc)) or type(exc).__name__}",
                       "check the network, or HF_ENDPOINT if you set it") from None
    return {"repo_url": str(repo_url), "commit_url": commit.commit_url, "commit": commit.oid}


def _one_line(text: Optional[str], limit: int = 200) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[:limit] + "..."


def hub_error(exc, repo_id: str, revision: Optional[str]) -> HubError:
    """One line and a hint for an HTTP error from the Hub (the client's long message has the URL
    and a request id; the server's own words are kept when it sent some)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    status = exc.response.status_code if getattr(exc, "response", None) is not None else None
    said = _one_line(exc.server_message)
    why = f": {said}" if said else ""
    owner = repo_id.split("/")[0]
    if status == 401:
        return HubError(f"the Hub refused the access token (401 Unauthorized{why})",
                        "check HF_TOKEN or log in again with `hf auth login`; the token needs write access")
    if status == 403:
        return HubError(f"the token may not write to {repo_id} (403 Forbidden{why})",
                        f"use a token with write access to {owner!r}, or push to a namespace you own")
    if isinstance(exc, RevisionNotFoundError) or (status == 404 and revision and "revision" in said.lower()):
        return HubError(f"revision {revision!r} was not found in {repo_id} (404{why})",
                        "name a branch (tunekit creates it) or an existing pull request ref")
    if status == 404 or isinstance(exc, RepositoryNotFoundError):
        return HubError(f"repository {repo_id} was not found (404{why})",
                        f"check the name; a token without access to {owner!r} also gets a 404")
    if status == 409:
        return HubError(f"the Hub reported a conflict on {repo_id} (409 Conflict{why})",
                        "someone else may be pushing to it: retry, or choose another --revision")
    if status == 429:
        return HubError(f"the Hub is rate-limiting requests (429{why})", "wait a minute and push again")
    if status is not None and status >= 500:
        return HubError(f"the Hub failed to answer (HTTP {status}{why})", "retry later")
    return HubError(f"the Hub refused the request (HTTP {status}{why or ': ' + _one_line(str(exc))})",
                    "check --repo and --revision; rerun with TUNEKIT_DEBUG=1 for the details")
