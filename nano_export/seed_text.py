"""Text for demo data: prompts, responses, errors, tool payloads and planted sensitive snippets.

Every pool is built from a fixed random generator, independent of the user's ``--seed``, so the
same seed always picks the same strings. Planted credentials are generated at run time (they look
real to a scanner but are random), never written literally into the source.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from functools import cache

from nano_export.pricing import PRICES

POOL_SIZE = 24  # variants per (test, model) response pool and per prompt pool
_POOL_SEED = 20250810


@dataclass(frozen=True, slots=True)
class TestKind:
    """One evaluation test (or the ad-hoc kind) and how heavy it is."""

    test_id: str | None
    test_name: str | None
    complexity: float  # scales tokens and time; 1.0 = the File Operations Test
    tools: tuple[int, int]  # inclusive range of tool calls per execution
    weight: float  # share of eval runs using this test
    difficulty: float  # multiplies every model's success rate


TESTS: tuple[TestKind, ...] = (
    TestKind("dummy_test", "The Dummy Test", 0.05, (0, 0), 0.16, 1.0),
    TestKind("basic_read_test", "Basic Read Test", 0.55, (1, 2), 0.16, 0.99),
    TestKind("file_operations_test", "File Operations Test", 1.0, (2, 4), 0.14, 0.97),
    TestKind("code_analysis_test", "Code Analysis and Enhancement Test", 1.5, (2, 5), 0.12, 0.95),
    TestKind("complex_engineering_test", "Complex Engineering Test", 3.0, (3, 6), 0.10, 0.88),
    TestKind("directory_listing_test", "Directory Listing Test", 0.4, (1, 2), 0.10, 0.99),
    TestKind("json_extraction_test", "Structured JSON Extraction Test", 0.7, (1, 3), 0.08, 0.96),
    TestKind("bug_fix_test", "Bug Fix Test", 1.8, (2, 5), 0.08, 0.92),
    TestKind("multi_file_refactor_test", "Multi-file Refactor Test", 2.4, (3, 6), 0.06, 0.9),
)
ADHOC = TestKind(None, None, 0.6, (0, 3), 0.0, 0.97)
KINDS: tuple[TestKind, ...] = (*TESTS, ADHOC)

USERS = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yuki",
)  # fmt: skip

TOOLS = ("read_file", "list_directory", "write_file", "get_file_info", "edit_file")
TOOL_WEIGHTS = (0.34, 0.24, 0.16, 0.14, 0.12)

_FILES = (
    "README.md", "pyproject.toml", "src/nano_agent/__init__.py", "src/nano_agent/cli.py",
    "src/nano_agent/modules/constants.py", "src/nano_agent/modules/nano_agent.py",
    "src/nano_agent/modules/nano_agent_tools.py", "src/nano_agent/modules/token_tracking.py",
    "src/nano_agent/modules/provider_config.py", "tests/test_nano_agent.py", "docs/usage.md",
    "apps/nano_agent_mcp_server/README.md", "CHANGELOG.md", "Makefile", "config/settings.yaml",
)  # fmt: skip
_DIRS = (".", "src", "src/nano_agent", "src/nano_agent/modules", "tests", "docs", "apps", "config")
_TOPICS = (
    "token tracking", "provider configuration", "tool dispatch", "retry logic", "error handling",
    "the CLI entry point", "logging", "the MCP server", "cost calculation",
    "the evaluation harness",
)  # fmt: skip


def _rng(*parts: object) -> random.Random:
    return random.Random(f"{_POOL_SEED}:{':'.join(map(str, parts))}")


_PROMPTS: dict[str, tuple[str, ...]] = {
    "dummy_test": (
        "What is the capital of the United States? Respond with your entire JSON response "
        "structure as is.",
        "What is the capital of {country}? Answer in one short JSON object and do not use any "
        "tools for this question.",
    ),
    "basic_read_test": (
        "Read the file {file} and return its first {n} lines exactly as they appear, then tell me "
        "how many lines the file has in total.",
        "Open {file}, read it completely and summarise what it is about in two sentences. Quote "
        "the first heading verbatim.",
    ),
    "file_operations_test": (
        "List the files in {dir}, create a file named notes_{{model}}.md containing a bullet list "
        "of every Python file you found with its size, then read it back to confirm.",
        "Get the file info of {file}, copy its first {n} lines into output_{{model}}.txt, and "
        "report the size of both files in bytes.",
    ),
    "code_analysis_test": (
        "Analyze {file}: identify every constant and group them by category. Create "
        "analysis_{{model}}.py with a get_constants_report() function that returns the counts, "
        "and an enhanced copy of the file with a MODEL_SIGNATURE constant added.",
        "Read {file} and explain how {topic} works. Point out two weaknesses and write a short "
        "improvement proposal to review_{{model}}.md.",
    ),
    "complex_engineering_test": (
        "Design and implement a small plugin system for {topic}: read the existing modules under "
        "{dir}, write a plugin registry module, two example plugins and tests for the registry. "
        "Keep the public API backwards compatible and explain every file you changed.",
        "Refactor {topic} so providers can be added without editing the core loop. Read the "
        "relevant files in {dir}, propose the interface, implement it, update the docs and list "
        "remaining risks.",
    ),
    "directory_listing_test": (
        "List the contents of {dir} and tell me which entries are directories and which are "
        "files, sorted by name.",
        "How many Python files are there under {dir}? List them with their sizes.",
    ),
    "json_extraction_test": (
        "Read {file} and extract every setting it defines as a JSON object mapping name to value. "
        "Return only the JSON.",
        "From {file}, extract the version, the dependencies and the entry points as JSON with "
        "keys version, dependencies and scripts.",
    ),
    "bug_fix_test": (
        "The tests in tests/test_nano_agent.py fail with a KeyError in {topic}. Read {file}, find "
        "the bug, fix it with the smallest change possible and explain the root cause.",
        "There is an off-by-one error in {topic} ({file}). Locate it, edit the file to fix it, "
        "and show the diff of your change.",
    ),
    "multi_file_refactor_test": (
        "Rename the helper that handles {topic} to a clearer name across the code base under "
        "{dir}, update every import and call site, and list each file you edited.",
        "Split {file} into two modules, one for {topic} and one for the rest, keeping the imports "
        "working everywhere. Report the new layout.",
    ),
    "adhoc": (
        "Can you check {file} and tell me whether {topic} handles timeouts correctly?",
        "Summarise the recent changes described in CHANGELOG.md and list anything that touches "
        "{topic}.",
        "Write a short docstring for every public function in {file} and show me the result.",
        "Why would {topic} be slow on large inputs? Look at {file} and suggest a fix.",
    ),
}

_RESPONSES: dict[str, tuple[str, ...]] = {
    "dummy_test": (
        '{{"answer": "Washington, D.C."}}',
        '{{"question": "What is the capital of the United States?", "answer": "Washington, D.C."}}',
        "The capital of the United States is Washington, D.C. (District of Columbia). This is a "
        "general knowledge question that doesn't require any file operations, so I'm responding "
        "directly without using any tools.",
    ),
    "basic_read_test": (
        "The first {n} lines of {file} are shown above. The file has {m} lines in total and "
        "describes the nano-agent project, its installation and its MCP server.",
        "{file} is a {m}-line document. It introduces the nano-agent MCP server, explains how to "
        "install it with uv and lists the supported providers: OpenAI, Anthropic and Ollama.",
    ),
    "file_operations_test": (
        "Created notes_{model}.md listing {n} Python files with their sizes and read it back: the "
        "content matches. Total size of the listed files: {m} bytes.",
        "Done. output_{model}.txt holds the first {n} lines of {file} ({m} bytes); the original "
        "file is unchanged.",
    ),
    "code_analysis_test": (
        "Analyzed {n} constants in {k} categories. Default model: gpt-5-mini, provider: openai. "
        "Created analysis_{model}.py with get_constants_report() and enhanced_constants_{model}.py "
        "with MODEL_SIGNATURE. All original constants preserved.",
        "{topic} is implemented in {file}. Weaknesses: no retry budget and silent fallbacks. The "
        "proposal in review_{model}.md adds explicit errors and a bounded retry.",
    ),
    "complex_engineering_test": (
        "Implemented a plugin registry for {topic} in {dir}/plugins.py with two example plugins "
        "and {n} tests (all passing). The public API is unchanged; I edited {k} files and noted "
        "two follow-ups: configuration validation and plugin ordering.",
        "Introduced a Provider protocol and moved {topic} behind it. {k} files changed, docs "
        "updated, {n} new tests. Remaining risk: third-party providers relying on private helpers.",
    ),
    "directory_listing_test": (
        "{dir} contains {n} files and {k} directories. Directories: src, tests, docs. Files "
        "include README.md, pyproject.toml and Makefile.",
        "There are {n} Python files under {dir}; the largest is {file} ({m} bytes).",
    ),
    "json_extraction_test": (
        '{{"version": "0.{k}.{n}", "dependencies": ["openai-agents", "mcp", "rich"], '
        '"scripts": {{"nano-cli": "nano_agent.cli:main"}}}}',
        '{{"settings": {{"default_model": "gpt-5-mini", "max_turns": {n}, "timeout": {m}}}}}',
    ),
    "bug_fix_test": (
        "Found it: {topic} indexed the usage dict before checking the provider. Fixed in {file} "
        "with a two-line change; the {n} tests now pass. Root cause: a missing default.",
        "The loop in {file} stopped one item early. Changed range(len(items) - 1) to "
        "range(len(items)); diff shown above. {n} tests pass.",
    ),
    "multi_file_refactor_test": (
        "Renamed the {topic} helper and updated {k} imports across {n} files under {dir}. All "
        "tests pass.",
        "Split {file} into two modules; {k} imports updated. New layout: core.py ({topic}) and "
        "helpers.py.",
    ),
    "adhoc": (
        "I checked {file}: {topic} sets a timeout but does not retry on failure. Consider a "
        "bounded retry with backoff.",
        "Recent changes touching {topic}: improved token tracking, a new provider option and a "
        "fix for cost rounding. Nothing else relevant.",
        "Added docstrings to {n} public functions in {file}; see the updated file above.",
    ),
}

_VERBOSE_TAIL = (
    " I verified the result by reading the file again and everything looks consistent.",
    " Let me know if you want me to go further, for example by adding tests or documentation.",
    " Note: I only used the tools that were necessary and did not modify any other files.",
)

ERRORS: dict[str, tuple[str, ...]] = {
    "openai": (
        "Error code: 429 - Rate limit reached for requests. Please try again in 20s.",
        "Request timed out after 300 seconds.",
        "Max turns (20) exceeded before the agent produced a final answer.",
        "Invalid tool call: arguments for write_file were not valid JSON.",
    ),
    "anthropic": (
        "Error code: 529 - Overloaded. The API is temporarily overloaded.",
        "Error code: 429 - rate_limit_error: Number of request tokens has exceeded your limit.",
        "Max turns (20) exceeded before the agent produced a final answer.",
        "Request timed out after 300 seconds.",
    ),
    "ollama": (
        "Connection refused: http://localhost:11434 (is Ollama running?)",
        "Model gpt-oss:120b ran out of memory while loading (requested 65 GiB).",
        "Request timed out after 300 seconds.",
        "Tool call parsing failed: model emitted malformed function arguments.",
    ),
}


def _fill(template: str, rnd: random.Random, model: str = "") -> str:
    return template.format(
        file=rnd.choice(_FILES),
        dir=rnd.choice(_DIRS),
        topic=rnd.choice(_TOPICS),
        country=rnd.choice(("the United States", "France", "Japan", "Canada")),
        n=rnd.randint(3, 40),
        m=rnd.randint(40, 9000),
        k=rnd.randint(2, 12),
        model=model,
    )


def _key(kind: TestKind) -> str:
    return kind.test_id or "adhoc"


@cache
def prompt_pool(kind_index: int) -> tuple[str, ...]:
    """Prompt variants of one test kind; ``{model}`` stands for the model the prompt is sent to."""
    kind = KINDS[kind_index]
    rnd = _rng("prompt", _key(kind))
    return tuple(_fill(rnd.choice(_PROMPTS[_key(kind)]), rnd) for _ in range(POOL_SIZE))


@cache
def response_pool(kind_index: int, model_index: int) -> tuple[str, ...]:
    """Successful-response variants of one test kind written by one model."""
    kind = KINDS[kind_index]
    price = PRICES[model_index]
    rnd = _rng("response", _key(kind), price.model)
    verbose = price.provider == "anthropic" and "haiku" not in price.model
    out = []
    for _ in range(POOL_SIZE):
        text = _fill(rnd.choice(_RESPONSES[_key(kind)]), rnd, model=price.model)
        if verbose or rnd.random() < 0.25:
            text += rnd.choice(_VERBOSE_TAIL)
        out.append(text)
    return tuple(out)


def _token(rnd: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rnd.choice(alphabet) for _ in range(n))


def _jwt(rnd: random.Random) -> str:
    import base64

    def seg(obj: dict[str, object]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    payload = {"sub": rnd.choice(USERS), "iat": 1754800000 + rnd.randint(0, 10**6)}
    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(payload)}.{_token(rnd, 43)}"


@cache
def sensitive_snippets() -> tuple[tuple[str, str], ...]:
    """(category, text) pairs planted into a small share of rows: credentials, PII, formulas.

    Categories: ``credential``, ``email``, ``home_path`` and ``formula`` (text that a spreadsheet
    would run when a cell begins with it).
    """
    rnd = _rng("sensitive")
    upper = string.ascii_uppercase + string.digits
    out: list[tuple[str, str]] = []
    for _ in range(4):
        user = rnd.choice(USERS)
        pw = _token(rnd, 14)
        out += [
            ("credential", f"Use my key sk-{_token(rnd, 48)} for this run."),
            ("credential", f"export ANTHROPIC_API_KEY=sk-ant-api03-{_token(rnd, 86)}"),
            ("credential", f"The project key is sk-proj-{_token(rnd, 56)} (do not share)."),
            ("credential", f"AWS creds: AKIA{_token(rnd, 16, upper)} / {_token(rnd, 40)}"),
            ("credential", f"clone with https://ghp_{_token(rnd, 36)}@github.com/acme/agent.git"),
            ("credential", f"Authorization: Bearer {_jwt(rnd)}"),
            ("credential", f"the eval db is postgres://{user}:{pw}@db.internal:5432/evals"),
            ("credential", f"log in with user={user} password={pw} if prompted"),
            ("email", f"Send the summary to {user}.{rnd.choice(USERS)}@example.com when done."),
            ("email", f"Questions go to {user}@acme-labs.io, cc ops@acme-labs.io."),
            ("home_path", f"The config lives in /home/{user}/projects/nano-agent/.env"),
            ("home_path", f"Results saved to /Users/{user}/Documents/evals/report.md"),
            ("formula", "=SUM(A1:A9) is the total of the first nine runs."),
            ("formula", "+cmd|' /C calc'!A0 appeared in the tool output."),
            ("formula", "@import url(styles.css) was found at the top of the file."),
            ("formula", "-1+1 evaluates to zero, so the counter was reset."),
        ]
    order = ("credential", "email", "home_path", "formula")
    return tuple(sorted(out, key=lambda pair: order.index(pair[0])))  # grouped by category


@cache
def tool_arguments(tool_index: int) -> tuple[str, ...]:
    """JSON argument variants for one tool."""
    tool = TOOLS[tool_index]
    rnd = _rng("args", tool)
    out = []
    for _ in range(POOL_SIZE):
        if tool == "list_directory":
            args: dict[str, object] = {"directory_path": rnd.choice(_DIRS)}
        elif tool == "write_file":
            args = {"file_path": f"output_{rnd.randint(1, 99)}.md", "content": "# Notes\n..."}
        elif tool == "edit_file":
            args = {
                "file_path": rnd.choice(_FILES),
                "old_str": "max_turns = 10",
                "new_str": f"max_turns = {rnd.randint(11, 40)}",
            }
        else:
            args = {"file_path": rnd.choice(_FILES)}
        out.append(json.dumps(args))
    return tuple(out)


@cache
def tool_results(tool_index: int) -> tuple[str, ...]:
    """Result variants for one tool (successful calls)."""
    tool = TOOLS[tool_index]
    rnd = _rng("results", tool)
    out = []
    for _ in range(POOL_SIZE):
        if tool == "read_file":
            lines = rnd.randint(20, 900)
            text = f"# nano-agent\n\nAn MCP server for small agents.\n... ({lines} lines)"
        elif tool == "list_directory":
            names = rnd.sample(["README.md", "src/", "tests/", "docs/", "Makefile", "uv.lock"], 4)
            text = "\n".join(names)
        elif tool == "write_file":
            text = f"Successfully wrote {rnd.randint(40, 4000)} bytes"
        elif tool == "edit_file":
            text = "Successfully replaced 1 occurrence"
        else:
            info = {"size": rnd.randint(100, 90000), "is_file": True, "modified": "2025-08-09"}
            text = json.dumps(info)
        out.append(text)
    return tuple(out)


TOOL_ERRORS = (
    "Error: File not found: src/nano_agent/modules/config.py",
    "Error: Permission denied: /etc/shadow",
    "Error: old_str not found in file",
    "Error: Path is a directory, not a file: src",
)


def request_arguments(model_index: int) -> str:
    """The arguments of an execution's request interaction."""
    p = PRICES[model_index]
    return json.dumps({"model": p.model, "provider": p.provider})
