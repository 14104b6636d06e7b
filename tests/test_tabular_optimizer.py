"""The tabular network's optimizer: momentum SGD written out (ml/tabular.MomentumSGD) must move the
weights exactly as torch.optim.SGD does, so trained models are the same as with torch's optimizer,
and a training process must not load torch._dynamo (about a second of every training run)."""

import subprocess
import sys

import torch

from ml import tabular


def _steps(make_optimizer: object, *, hidden_size: int | None, steps: int = 25) -> list[torch.Tensor]:
    torch.manual_seed(7)
    network = tabular.build_network(5, hidden_size)
    optimizer = make_optimizer(network.parameters())  # type: ignore[operator]
    inputs = torch.randn(64, 5)
    targets = torch.randn(64, 1)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(network(inputs), targets).backward()
        optimizer.step()
    return [parameter.detach().clone() for parameter in network.parameters()]


def test_momentum_sgd_moves_the_weights_exactly_as_torchs_sgd() -> None:
    for hidden_size in (None, 8):
        ours = _steps(
            lambda p: tabular.MomentumSGD(p, lr=0.05, momentum=tabular.MOMENTUM), hidden_size=hidden_size
        )
        torchs = _steps(
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=tabular.MOMENTUM), hidden_size=hidden_size
        )
        assert len(ours) == len(torchs)
        for mine, theirs in zip(ours, torchs, strict=True):
            assert torch.equal(mine, theirs)


def test_training_does_not_load_torch_dynamo() -> None:
    program = (
        "import sys; import numpy as np; from ml import tabular; "
        "x = np.random.default_rng(1).random((200, 3)); y = x @ np.array([1.0, 2.0, 3.0]); "
        "spec = tabular.TrainingSpec(features=['a', 'b', 'c'], target='y', epochs=2, "
        "learning_rate=0.05, hidden_size=None); tabular.train(x, y, spec); "
        "print('torch._dynamo' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
