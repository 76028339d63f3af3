"""Plain progress lines: what a redirected training run prints instead of a redrawn bar."""

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from harmowam.progress import PlainProgress


class LinearFit(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_plain_progress_prints_one_line_per_interval_with_budgets_and_losses(capsys, tmp_path):
    x = torch.randn(64, 2)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    trainer = L.Trainer(max_steps=5, max_time="00:00:10:00", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[PlainProgress(every_s=0.0)],
                        default_root_dir=tmp_path)
    trainer.fit(LinearFit(), data)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("step", "[LinearFit]"))]
    assert lines[0] == "[LinearFit] training: max_steps 5, max_time 0:10:00"
    assert lines[1].startswith("step 1/5, elapsed 0:00:00, steps left ~")
    assert "time left 0:09:5" in lines[1] or "time left 0:10:00" in lines[1]
    assert "train/loss" in lines[1]
    assert lines[-1].startswith("step 5/5") and lines[-1].endswith("(done)")
    assert not any("\r" in line for line in lines)
