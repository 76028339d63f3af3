import numpy as np

import harmowam
from harmowam.labels import ee_height, gripper_events, proximity


def _episode(n=30, gripper=None, hand=None, obj=None):
    action = np.zeros((n, 4), np.float32)
    if gripper is not None:
        action[:, 3] = gripper
    state = np.zeros((n, 4), np.float32)
    env = np.zeros((n, 39), np.float32)
    if hand is not None:
        state[:, :3] = hand
        env[:, :3] = hand
    if obj is not None:
        env[:, 4:7] = obj
    return {"action": action, "state": state, "env_state": env}


def test_gripper_events_mark_a_window_around_each_event():
    grip = -np.ones(30)
    grip[10:20] = 1.0  # close at step 10, open at step 20
    labels = gripper_events(_episode(gripper=grip), window=3)
    assert labels.tolist() == [i in range(7, 14) or i in range(17, 24) for i in range(30)]
    assert not gripper_events(_episode(gripper=-np.ones(30))).any()  # no event, no interaction


def test_proximity_needs_no_gripper_event():
    hand = np.zeros((30, 3))
    hand[:, 0] = np.linspace(0.5, 0.0, 30)  # the hand approaches the object at the origin
    labels = proximity(_episode(hand=hand, obj=np.zeros(3)), radius=0.06, window=0)
    dist = np.abs(hand[:, 0])
    assert labels.tolist() == (dist < 0.06).tolist()
    assert labels[-1] and not labels[0]


def test_ee_height():
    hand = np.zeros((20, 3))
    hand[:, 2] = 0.2
    hand[8, 2] = 0.05
    labels = ee_height(_episode(n=20, hand=hand), height=0.08, window=1)
    assert np.flatnonzero(labels).tolist() == [7, 8, 9]


def test_strategies_are_registered_functions():
    assert harmowam.get_label_strategy("proximity") is proximity
