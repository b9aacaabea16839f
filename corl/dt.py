"""Decision Transformer (CORL's dt.py): a causal transformer over (return-to-go, state, action)
tokens, trained to predict each step's action from the tokens up to its state, and evaluated
conditioned on target returns.

    python -m corl.dt --env maze2d-umaze-v1 --intent manager
    python -m corl.dt --help

The plugin is reached through exactly two lines, marked with the PLUGIN(intents) comment.

What follows CORL exactly: the model (token order r, s, a; LayerNorm + dropout on the embedded
sequence; pre-LN blocks with a causal mask, GELU MLP of 4x width; final LayerNorm; tanh action
head read from the state tokens; N(0, 0.02) init of Linear/Embedding weights, zero biases), the
trajectory split (terminals or timeouts; an unfinished tail is dropped), the state mean/std over
ALL dataset rows with std + 1e-6, undiscounted returns-to-go times reward_scale, zero padding
with a mask for sequences running past a trajectory's end, AdamW (lr, betas, weight decay on
every parameter), linear warmup min((step + 1) / warmup_steps, 1), gradient-norm clipping, the
masked MSE averaged over all B * seq_len * act entries (padding included in the denominator),
and evaluation at every one of target_returns with the return-to-go lowered by
reward * reward_scale after each step. Defaults are CORL's TrainConfig; the per-domain values
(batch size, lr, reward scale, targets) are in corl/presets/dt/.

Choices (where this project differs or had to decide):
- Sampling: CORL picks a trajectory with probability length / total and a uniform start in it;
  that is exactly a uniform draw over all dataset rows, which is what SequenceBuffer does (on the
  device, with its own torch.Generator) instead of a numpy DataLoader with workers.
- Timestep embedding: CORL sizes it episode_len (1000) + seq_len. Here episode_len defaults to
  the task's time limit (tasks.get_task(env).max_episode_steps: 300/600/800 maze2d, 2000 later
  for antmaze-ultra), raised to (longest dataset trajectory - 1) when a dataset trajectory is
  longer than the limit + 1 (antmaze-umaze's datasets hold 1000-step episodes, its limit is
  700), so every training timestep has an embedding.
- Evaluation runs batched over the vector env for the task's time limit (CORL runs single
  episodes of at most its own episode_len, cut by the gym env's limit), seeded by our `seed`
  (CORL: eval_seed 42). The rollout keeps a fixed window of seq_len steps per env, filled from
  the left until full, then rolled; the action is read at the newest step. Through the causal
  mask this is exactly CORL's growing history cut to its last seq_len steps.
- Run size, eval cadence and episodes come from the shared profile (`steps` is CORL's
  update_steps, 100K there; the paper's protocol is 200K with intents / 500K without).
  metrics.csv holds one eval column per target; the headline score is the first target's.
- Logged: train_loss and learning_rate (the rate used by that update), as CORL logs them.
"""
# (no `from __future__ import annotations`: pyrallis needs evaluated field types)

import functools
import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from common.cli import config_field as field
from common.normalization import observation_stats
from corl.shared.compiled import CompiledLosses
from corl.shared.config import WorkerConfig, worker_main
from corl.shared.run import WorkerRun, env_dims
from tasks import load_dataset, trajectories
from wrappers import augment, wrap_env


@dataclass
class DTConfig(WorkerConfig):
    algo: str = field("dt", "algorithm name")
    embedding_dim: int = field(128, "transformer hidden size")
    num_layers: int = field(3, "number of transformer blocks")
    num_heads: int = field(1, "attention heads per block")
    seq_len: int = field(20, "steps per sequence (3 tokens each: return-to-go, state, action)")
    episode_len: Optional[int] = field(None, "longest episode the timestep embedding covers (default: the task's "
                                             "time limit, raised to the longest dataset trajectory - 1)")
    attention_dropout: float = field(0.1, "dropout on the attention weights")
    residual_dropout: float = field(0.1, "dropout on the attention output and the MLP output")
    embedding_dropout: float = field(0.1, "dropout on the embedded token sequence")
    max_action: float = field(1.0, "actions are max_action * tanh(...)")
    learning_rate: float = field(1e-4, "AdamW learning rate")
    betas: Tuple[float, float] = field((0.9, 0.999), "AdamW betas")
    weight_decay: float = field(1e-4, "AdamW weight decay")
    clip_grad: Optional[float] = field(0.25, "maximum gradient norm (null: no clipping)")
    batch_size: int = field(64, "training batch size (sequences)")
    warmup_steps: int = field(10_000, "linear learning-rate warmup steps")
    reward_scale: float = field(0.001, "returns-to-go are multiplied by this")
    target_returns: Tuple[float, ...] = field((12000.0, 6000.0), "returns the policy is conditioned on at "
                                                                   "evaluation, each evaluated; the first is the "
                                                                   "headline score")


# --- data ---------------------------------------------------------------------------------------
def returns_to_go(rewards: np.ndarray, reward_scale: float = 1.0) -> np.ndarray:
    """(T,) undiscounted returns-to-go R_t = sum_{t' >= t} r_t', times reward_scale (float32)."""
    rewards = np.asarray(rewards, dtype=np.float32)
    return (np.cumsum(rewards[::-1])[::-1] * np.float32(reward_scale)).astype(np.float32)


def split_trajectories(dataset: dict[str, np.ndarray], max_episode_steps: int) -> list[dict[str, np.ndarray]]:
    """CORL's load_d4rl_trajectories split: episodes end at a terminal or timeout; the unfinished
    tail is dropped. (max_episode_steps only matters for files without `timeouts`.)"""
    return trajectories(dataset, drop_incomplete=True, max_episode_steps=max_episode_steps)


def timestep_episode_len(max_episode_steps: int, longest_trajectory: int) -> int:
    """episode_len of the timestep embedding (which has episode_len + seq_len rows): the time limit,
    or longest - 1 if larger (a sequence starting at a trajectory's last step t = longest - 1
    reaches t + seq_len - 1 < longest - 1 + seq_len)."""
    return max(int(max_episode_steps), int(longest_trajectory) - 1)


class SequenceBuffer:
    """CORL's SequenceDataset resident on the device: every trajectory's normalised states,
    actions and scaled returns-to-go, concatenated; a sequence starts at a uniform dataset row
    (= CORL's length-weighted trajectory choice with a uniform start) and runs seq_len steps,
    zero-padded (mask 0) past its trajectory's end."""

    def __init__(self, trajs: Sequence[dict[str, np.ndarray]], state_mean: np.ndarray, state_std: np.ndarray,
                 seq_len: int, reward_scale: float, device: str | torch.device, seed: int = 0):
        if not trajs:
            raise ValueError("the dataset holds no finished trajectory (none ends with a terminal or a timeout)")
        self.device = torch.device(device)
        lengths = np.array([len(t["rewards"]) for t in trajs], dtype=np.int64)
        starts = np.cumsum(lengths) - lengths
        states = np.concatenate([np.asarray(t["observations"], dtype=np.float32) for t in trajs])
        states = (states - state_mean) / state_std
        rtg = np.concatenate([returns_to_go(t["rewards"], reward_scale) for t in trajs])

        def put(array, dtype=torch.float32) -> Tensor:
            return torch.as_tensor(np.asarray(array), dtype=dtype, device=self.device)

        self.observations = put(states)  # (N, obs_dim), normalised
        self.actions = put(np.concatenate([t["actions"] for t in trajs]))  # (N, act_dim)
        self.returns_to_go = put(rtg)  # (N,), scaled
        self.row_start = put(np.repeat(starts, lengths), torch.long)  # (N,) first row of the row's trajectory
        self.row_end = put(np.repeat(starts + lengths, lengths), torch.long)  # (N,) one past its last row
        self.lengths = lengths
        self.seq_len = seq_len
        self.steps = torch.arange(seq_len, device=self.device)  # (K,)
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def __len__(self) -> int:
        return len(self.observations)

    def sample(self, batch_size: int) -> list[Tensor]:
        """[states (B, K, obs), actions (B, K, act), returns_to_go (B, K), time_steps (B, K) long,
        mask (B, K) float: 1 for real steps, 0 for padding]."""
        first = torch.randint(len(self), (batch_size,), device=self.device, generator=self.generator)  # (B,)
        rows = first[:, None] + self.steps  # (B, K)
        valid = rows < self.row_end[first][:, None]  # (B, K)
        rows = torch.where(valid, rows, first[:, None])  # padding reads a real row, zeroed below
        states = torch.where(valid[..., None], self.observations[rows], 0.0)
        actions = torch.where(valid[..., None], self.actions[rows], 0.0)
        rtg = torch.where(valid, self.returns_to_go[rows], 0.0)
        time_steps = (first - self.row_start[first])[:, None] + self.steps  # (B, K), padding keeps counting
        return [states, actions, rtg, time_steps, valid.float()]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "size": len(self)}

    def load_state_dict(self, state: dict) -> None:
        if int(state["size"]) != len(self):
            raise ValueError("the sequence-buffer state belongs to another dataset (different size)")
        self.generator.set_state(state["generator"])


# --- model --------------------------------------------------------------------------------------
class TransformerBlock(nn.Module):
    """Pre-LN block: x + drop(attn(LN(x))) with a causal mask, then x + MLP(LN(x))."""

    def __init__(self, num_tokens: int, embedding_dim: int, num_heads: int, attention_dropout: float,
                 residual_dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.drop = nn.Dropout(residual_dropout)
        self.attention = nn.MultiheadAttention(embedding_dim, num_heads, attention_dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, 4 * embedding_dim), nn.GELU(),
                                 nn.Linear(4 * embedding_dim, embedding_dim), nn.Dropout(residual_dropout))
        # True: query i may not attend to key j (j > i)
        causal = ~torch.tril(torch.ones(num_tokens, num_tokens, dtype=torch.bool))
        self.register_buffer("causal_mask", causal, persistent=False)

    def forward(self, x: Tensor, padding_mask: Optional[Tensor] = None) -> Tensor:
        """x (B, L, E); padding_mask (B, L) bool, True for keys to ignore."""
        n = x.shape[1]
        h = self.norm1(x)
        attended = self.attention(h, h, h, attn_mask=self.causal_mask[:n, :n], key_padding_mask=padding_mask,
                                  need_weights=False)[0]
        x = x + self.drop(attended)
        return x + self.mlp(self.norm2(x))


class DecisionTransformer(nn.Module):
    def __init__(self, state_dim: int, action_dim: int, seq_len: int = 20, episode_len: int = 1000,
                 embedding_dim: int = 128, num_layers: int = 3, num_heads: int = 1, attention_dropout: float = 0.1,
                 residual_dropout: float = 0.1, embedding_dropout: float = 0.1, max_action: float = 1.0):
        super().__init__()
        self.emb_drop = nn.Dropout(embedding_dropout)
        self.emb_norm = nn.LayerNorm(embedding_dim)
        self.out_norm = nn.LayerNorm(embedding_dim)
        self.timestep_emb = nn.Embedding(episode_len + seq_len, embedding_dim)  # + seq_len: padding keeps counting
        self.state_emb = nn.Linear(state_dim, embedding_dim)
        self.action_emb = nn.Linear(action_dim, embedding_dim)
        self.return_emb = nn.Linear(1, embedding_dim)
        self.blocks = nn.ModuleList([
            TransformerBlock(3 * seq_len, embedding_dim, num_heads, attention_dropout, residual_dropout)
            for _ in range(num_layers)])
        self.action_head = nn.Sequential(nn.Linear(embedding_dim, action_dim), nn.Tanh())
        self.seq_len, self.episode_len, self.embedding_dim = seq_len, episode_len, embedding_dim
        self.state_dim, self.action_dim, self.max_action = state_dim, action_dim, max_action
        self.apply(init_weights)

    def forward(self, states: Tensor, actions: Tensor, returns_to_go: Tensor, time_steps: Tensor,
                padding_mask: Optional[Tensor] = None) -> Tensor:
        """states (B, K, obs), actions (B, K, act), returns_to_go (B, K), time_steps (B, K) long,
        padding_mask (B, K) bool (True: padding) -> predicted actions (B, K, act), step t's read
        from its state token (it sees r_<=t, s_<=t, a_<t)."""
        batch, k = states.shape[:2]
        time = self.timestep_emb(time_steps)  # (B, K, E)
        tokens = torch.stack([self.return_emb(returns_to_go.unsqueeze(-1)) + time,
                              self.state_emb(states) + time,
                              self.action_emb(actions) + time], dim=2)  # (B, K, 3, E)
        sequence = tokens.reshape(batch, 3 * k, self.embedding_dim)  # (r_0, s_0, a_0, r_1, ...)
        if padding_mask is not None:
            padding_mask = padding_mask.repeat_interleave(3, dim=1)  # (B, 3K)
        out = self.emb_drop(self.emb_norm(sequence))
        for block in self.blocks:
            out = block(out, padding_mask=padding_mask)
        out = self.out_norm(out)
        return self.action_head(out[:, 1::3]) * self.max_action  # (B, K, act)


def init_weights(module: nn.Module) -> None:
    """CORL's (minGPT's) init: Linear/Embedding weights N(0, 0.02), zero biases, LayerNorm (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# --- algorithm ----------------------------------------------------------------------------------
def dt_loss(predicted: Tensor, actions: Tensor, mask: Tensor) -> Tensor:
    """Masked MSE: mean over all (B, K, act) entries of (predicted - actions)^2 * mask."""
    return ((predicted - actions) ** 2 * mask.unsqueeze(-1)).mean()


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Learning-rate multiplier at scheduler step `step` (0-based): min((step + 1) / warmup, 1)."""
    return min((step + 1) / warmup_steps, 1.0)


class DT(CompiledLosses):
    """Training (update) and batched target-conditioned evaluation (reset/act/observe)."""

    LOSS_METHODS = ("_loss",)  # --compile: torch.compile'd (corl/shared/compiled.py)

    def __init__(self, model: DecisionTransformer, learning_rate: float, betas: Tuple[float, float],
                 weight_decay: float, warmup_steps: int, clip_grad: Optional[float], reward_scale: float,
                 target_returns: Sequence[float]):
        if not target_returns:
            raise ValueError("target_returns must hold at least one return")
        self.model = model
        self.device = next(model.parameters()).device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=tuple(betas),
                                           weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, functools.partial(warmup_factor, warmup_steps=warmup_steps))
        self.clip_grad = clip_grad
        self.reward_scale = reward_scale
        self.eval_targets = [float(t) for t in target_returns]  # WorkerRun evaluates each
        self.target_return = self.eval_targets[0]
        self.reset(np.arange(1))

    def _loss(self, states: Tensor, actions: Tensor, rtg: Tensor, time_steps: Tensor, mask: Tensor) -> Tensor:
        """The masked MSE of the actions predicted from (B, K) sequences (dropout draws inside: a
        compiled run draws them from its own generator, seeded as the eager one)."""
        predicted = self.model(states, actions, rtg, time_steps, padding_mask=mask == 0)  # (B, K, act)
        return dt_loss(predicted, actions, mask)

    def update(self, batch: list[Tensor]) -> dict[str, Tensor]:
        states, actions, rtg, time_steps, mask = batch
        self.model.train()
        loss = self._loss(states, actions, rtg, time_steps, mask)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_grad is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        lr = self.scheduler.get_last_lr()[0]  # a python float the scheduler holds: no device sync
        self.optimizer.step()
        self.scheduler.step()
        return {"train_loss": loss.detach(), "learning_rate": torch.full((), lr, device=self.device)}

    # --- evaluation: per-env histories of the last seq_len steps ----------------------------------
    def set_eval_target(self, target: float) -> None:
        """The (unscaled) return the next evaluation is conditioned on."""
        self.target_return = float(target)

    def reset(self, episode_ids: np.ndarray) -> None:
        """New episodes in every env slot: empty histories, return-to-go = target * reward_scale."""
        n, k, dev = len(episode_ids), self.model.seq_len, self.device
        self.states = torch.zeros(n, k, self.model.state_dim, device=dev)  # (E, K, obs)
        self.actions = torch.zeros(n, k, self.model.action_dim, device=dev)  # (E, K, act)
        self.returns = torch.zeros(n, k, device=dev)  # (E, K)
        self.time_steps = torch.zeros(n, k, dtype=torch.long, device=dev)  # (E, K)
        self.t = torch.zeros(n, dtype=torch.long, device=dev)  # (E,) steps taken
        self.current_return = torch.full((n,), self.target_return * self.reward_scale, device=dev)  # (E,)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """(E, obs) normalised observations -> (E, act): append s_t (and R_t, t, a dummy a_t = 0) to
        each env's window, predict a_t at the newest position, keep it in the window."""
        self.model.eval()
        k = self.model.seq_len
        full = (self.t >= k)[:, None]  # (E, 1): drop the oldest step to make room
        self.states = torch.where(full[..., None], self.states.roll(-1, dims=1), self.states)
        self.actions = torch.where(full[..., None], self.actions.roll(-1, dims=1), self.actions)
        self.returns = torch.where(full, self.returns.roll(-1, dims=1), self.returns)
        self.time_steps = torch.where(full, self.time_steps.roll(-1, dims=1), self.time_steps)
        pos = self.t.clamp(max=k - 1)  # (E,) the newest step's position
        env = torch.arange(len(pos), device=self.device)
        self.states[env, pos] = obs.to(self.states.dtype)
        self.actions[env, pos] = 0.0
        self.returns[env, pos] = self.current_return
        self.time_steps[env, pos] = self.t.clamp(max=self.model.timestep_emb.num_embeddings - 1)
        action = self.model(self.states, self.actions, self.returns, self.time_steps)[env, pos]  # (E, act)
        self.actions[env, pos] = action
        return action

    def observe(self, rewards) -> None:
        """(E,) env rewards of the step just taken: R_{t+1} = R_t - r_t * reward_scale."""
        r = torch.as_tensor(np.asarray(rewards), dtype=torch.float32, device=self.device)
        self.current_return = self.current_return - r * self.reward_scale
        self.t = self.t + 1

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def build_algo(cfg: DTConfig, state_dim: int, action_dim: int, episode_len: int, device: str | torch.device) -> DT:
    """The model (on `device`) and its trainer, from the config's fields."""
    model = DecisionTransformer(state_dim, action_dim, seq_len=cfg.seq_len, episode_len=episode_len,
                                embedding_dim=cfg.embedding_dim, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
                                attention_dropout=cfg.attention_dropout, residual_dropout=cfg.residual_dropout,
                                embedding_dropout=cfg.embedding_dropout, max_action=cfg.max_action).to(device)
    return DT(model, cfg.learning_rate, cfg.betas, cfg.weight_decay, cfg.warmup_steps, cfg.clip_grad,
              cfg.reward_scale, cfg.target_returns)


def algo_for_checkpoint(cfg: DTConfig, state_dim: int, action_dim: int, max_action: float, algo_state: dict,
                        device: str | torch.device) -> DT:
    """The model a checkpoint's weights fit (`python -m corl evaluate`): the episode length, which
    train() reads from the data, is the timestep table's size less seq_len."""
    episode_len = algo_state["model"]["timestep_emb.weight"].shape[0] - cfg.seq_len
    return build_algo(cfg, state_dim, action_dim, episode_len, device)


def train(cfg: DTConfig) -> dict[str, Any] | None:
    run = WorkerRun(cfg)
    cfg = run.cfg
    dataset = load_dataset(cfg.env, cfg.data_dir, show_progress=cfg.progress)  # the raw D4RL dict
    dataset = augment(dataset, run.intents)  # PLUGIN(intents): append g_t to the dataset's states
    trajs = split_trajectories(dataset, run.task.max_episode_steps)
    state_mean, state_std = observation_stats(dataset["observations"], eps=1e-6)  # all rows, as CORL
    eval_env = wrap_env(run.make_eval_env(), run.intents)  # PLUGIN(intents): concat(s_t, g_t) at evaluation
    state_dim, action_dim, _ = env_dims(eval_env)  # DT's action scale is its max_action field, as CORL
    buffer = SequenceBuffer(trajs, state_mean, state_std, cfg.seq_len, cfg.reward_scale, run.device, seed=cfg.seed)
    episode_len = timestep_episode_len(cfg.episode_len or run.task.max_episode_steps, int(buffer.lengths.max()))
    algo = build_algo(cfg, state_dim, action_dim, episode_len, run.device)
    return run.train(algo, buffer, eval_env, state_mean, state_std, cfg.batch_size)


def main(argv: list[str] | None = None) -> int:
    return worker_main(DTConfig, "dt", train, argv)


if __name__ == "__main__":
    sys.exit(main())
