"""`eco-rails web`: a chat page for a rails config, with the plain model's answer beside each turn.

Why: ``nemoguardrails server`` serves no chat UI in this install (its UI needs an extra), and what a person
wants to see when trying a forget policy is per turn whether the rail flagged the message and what the model
would have said without it. The page is one HTML file with no external assets (it works offline); the server
is stateless: the page keeps both conversations (through the rails, and plain) and sends them with each turn.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field

from eco_rails.cli.app import _fail, app, err_console


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class TurnRequest(BaseModel):
    """One turn: the new message and both conversations so far (oldest first)."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=20_000)
    rails_history: list[Message] = Field(default_factory=list, max_length=200)
    plain_history: list[Message] = Field(default_factory=list, max_length=200)


class TurnReply(BaseModel):
    rails: str
    plain: str | None  # None when the main model is not the eco engine (no plain twin to ask)
    flagged: bool | None  # this message is in scope (None when the config has no eco rail)
    history_flagged: bool = False  # not this message, but an earlier in-scope turn is corrupted in the prompt
    refused: bool = False  # the classifier could not decide: the rail refuses (fails closed)
    score: float | None = None
    target: str | None = None
    detail: str = ""


class ChatSession:
    """The loaded rails config and what the page needs besides it: the plain twin and the rail's classifier."""

    def __init__(self, config: Path) -> None:
        from nemoguardrails import LLMRails, RailsConfig

        import eco_rails
        from eco_rails.rails.resolved import uses_eco_rail

        eco_rails.register_nemo_provider()
        self.config = config
        self.rails = LLMRails(RailsConfig.from_path(str(config)))
        self.has_rail = uses_eco_rail(config)
        llm = self.rails.llm
        self.engine = getattr(llm, "engine", None)
        self.settings = getattr(llm, "settings", None)

    def _decide(self, users: list[str]) -> dict[str, Any]:
        """The same decision the rail makes for these user turns, as :class:`TurnReply` fields."""
        if not self.has_rail:
            return {"flagged": None, "detail": "this config has no eco rail"}
        from eco_rails.errors import EcoRailsError
        from eco_rails.rails.runtime import runtime_for

        try:
            decision = runtime_for(self.rails.config).classifier().decide([{"role": "user", "content": u} for u in users])
        except EcoRailsError as exc:
            return {"flagged": None, "refused": True, "detail": f"the classifier cannot decide, so the rail refuses: {exc}"}
        latest = users[-1] in decision.spans
        return {"flagged": latest, "history_flagged": decision.flagged and not latest,
                "score": decision.score if decision.flagged else None, "target": decision.target if decision.flagged else None}

    async def turn(self, request: TurnRequest) -> TurnReply:
        rails_chat = [m.model_dump() for m in request.rails_history] + [{"role": "user", "content": request.message}]
        plain_chat = [m.model_dump() for m in request.plain_history] + [{"role": "user", "content": request.message}]
        users = [m["content"] for m in rails_chat if m["role"] == "user"]
        decision = await asyncio.to_thread(self._decide, users)
        answer = (await self.rails.generate_async(messages=rails_chat))["content"]
        plain = None
        if self.engine is not None and self.settings is not None:
            plain = (await self.engine.agenerate(plain_chat, settings=self.settings.generation())).text
        return TurnReply(rails=answer, plain=plain, **decision)


def create_app(config: Path) -> Any:
    """The FastAPI app: ``GET /`` the page, ``POST /api/turn`` one turn, ``GET /api/info`` the config's name."""
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    session = ChatSession(config)
    web = FastAPI(title="eco-rails chat", docs_url=None, redoc_url=None)
    page = PAGE.replace("{{CONFIG}}", _html_escape(str(config)))

    @web.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @web.get("/api/info")
    async def info() -> dict[str, Any]:
        return {"config": str(config), "eco_rail": session.has_rail, "plain": session.engine is not None}

    @web.post("/api/turn", response_model=TurnReply)
    async def turn(request: TurnRequest) -> TurnReply:
        return await session.turn(request)

    return web


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@app.command()
def web(
    config: Path = typer.Option(..., "--config", "-c", help="Rails config folder (as for `nemoguardrails chat`)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8040, "--port", min=1, max=65535),
) -> None:
    """A chat page for a rails config: per turn, whether the rail flagged it and the plain model's answer beside it."""
    import uvicorn

    from eco_rails.cli.chat import _ensure_artifact
    from eco_rails.errors import EcoRailsError

    if not (config / "config.yml").is_file() and not (config / "config.yaml").is_file():
        _fail(f"{config} is not a rails config folder (no config.yml). Try rails_configs/harry_potter.")
    try:
        _ensure_artifact(config)
        application = create_app(config)
    except EcoRailsError as exc:
        _fail(str(exc))
    err_console.print(f"Chat page for {config}: http://{host}:{port}/  (Ctrl-C to stop)")
    uvicorn.run(application, host=host, port=port, log_level="warning")


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>eco-rails chat</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
  header { padding: 12px 20px; background: #1d2330; color: #fff; }
  header small { color: #b8c0d0; }
  main { max-width: 1100px; margin: 0 auto; padding: 16px; }
  .turn { background: #fff; border-radius: 8px; padding: 12px 16px; margin-bottom: 12px; box-shadow: 0 1px 2px #0002; }
  .question { font-weight: 600; margin-bottom: 8px; }
  .badge { display: inline-block; font-size: 12px; padding: 2px 8px; border-radius: 10px; margin-left: 8px; font-weight: 500; }
  .flagged { background: #ffe1d6; color: #8a2b06; }
  .clean { background: #dff3e4; color: #17602c; }
  .refused { background: #eee; color: #555; }
  .history { background: #fff3c4; color: #6b5200; }
  .answers { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
  .answers h3 { font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: #667; margin: 0 0 4px; }
  .answers p { margin: 0; white-space: pre-wrap; }
  .same { font-size: 12px; color: #17602c; margin-top: 6px; }
  form { display: flex; gap: 8px; position: sticky; bottom: 0; background: #f5f6f8; padding: 12px 0; }
  textarea { flex: 1; font: inherit; padding: 8px; border-radius: 6px; border: 1px solid #c5cad3; resize: vertical; }
  button { font: inherit; padding: 8px 18px; border-radius: 6px; border: 0; background: #2f5bd3; color: #fff; cursor: pointer; }
  button:disabled { background: #8aa0dd; cursor: wait; }
  .error { color: #a00; }
</style>
</head>
<body>
<header><strong>eco-rails chat</strong> <small>config: {{CONFIG}} · left: through the rails · right: the plain model</small></header>
<main>
  <div id="turns"></div>
  <form id="ask">
    <textarea id="message" rows="2" placeholder="Ask something (Enter sends, Shift+Enter for a new line)"></textarea>
    <button id="send" type="submit">Send</button>
  </form>
</main>
<script>
const railsHistory = [], plainHistory = [];
const turns = document.getElementById("turns"), box = document.getElementById("message"), send = document.getElementById("send");
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
function badge(reply) {
  if (reply.refused) return el("span", "badge refused", "refused: the rail cannot decide");
  if (reply.flagged === null) return el("span", "badge refused", "no eco rail");
  if (reply.flagged) return el("span", "badge flagged", "flagged" + (reply.target ? " · " + reply.target : "") + (reply.score !== null ? " · score " + reply.score.toFixed(3) : ""));
  if (reply.history_flagged) return el("span", "badge history", "not flagged · an earlier flagged turn stays corrupted in the history");
  return el("span", "badge clean", "not flagged");
}
async function ask(text) {
  const turn = el("div", "turn"); turn.dataset.testid = "turn";
  const q = el("div", "question", text); turn.appendChild(q);
  const waiting = el("p", "", "…"); turn.appendChild(waiting); turns.appendChild(turn);
  send.disabled = true;
  try {
    const response = await fetch("/api/turn", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({message: text, rails_history: railsHistory, plain_history: plainHistory})});
    if (!response.ok) throw new Error("HTTP " + response.status + ": " + (await response.text()));
    const reply = await response.json();
    const b = badge(reply); b.dataset.testid = "flag"; q.appendChild(b);
    const answers = el("div", "answers");
    const left = el("div"); left.appendChild(el("h3", "", "Through the rails"));
    const r = el("p", "", reply.rails); r.dataset.testid = "rails-answer"; left.appendChild(r);
    const right = el("div"); right.appendChild(el("h3", "", "Plain model"));
    const p = el("p", "", reply.plain === null ? "(no plain model for this config)" : reply.plain); p.dataset.testid = "plain-answer"; right.appendChild(p);
    answers.appendChild(left); answers.appendChild(right); turn.replaceChild(answers, waiting);
    if (reply.plain !== null && reply.plain === reply.rails) turn.appendChild(el("div", "same", "identical to the plain model"));
    if (reply.detail) turn.appendChild(el("div", "error", reply.detail));
    railsHistory.push({role: "user", content: text}, {role: "assistant", content: reply.rails});
    if (reply.plain !== null) plainHistory.push({role: "user", content: text}, {role: "assistant", content: reply.plain});
  } catch (err) {
    turn.replaceChild(el("p", "error", String(err)), waiting);
  } finally {
    send.disabled = false; box.focus(); window.scrollTo(0, document.body.scrollHeight);
  }
}
document.getElementById("ask").addEventListener("submit", (e) => { e.preventDefault(); const t = box.value.trim(); if (t) { box.value = ""; ask(t); } });
box.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); document.getElementById("ask").requestSubmit(); } });
</script>
</body>
</html>
"""
