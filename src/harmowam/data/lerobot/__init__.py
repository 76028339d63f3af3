"""LeRobotDataset v3 in and out: real robot data for harmowam, harmowam's demonstrations for LeRobot."""

from harmowam.data.lerobot.reader import LeRobotReader, import_lerobot

__all__ = ["LeRobotReader", "import_lerobot"]
