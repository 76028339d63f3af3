"""Gates: how the predictive and reactive experts' actions are combined per step."""

from harmowam.gates.base import PREDICTIVE, REACTIVE, Gate
from harmowam.gates.fixed import ConstantGate, always_predictive, always_reactive, average
from harmowam.gates.process_adaptive import KeyframeAverageGate, ProcessAdaptiveGate

__all__ = ["Gate", "PREDICTIVE", "REACTIVE", "ConstantGate", "always_predictive", "always_reactive", "average",
           "KeyframeAverageGate", "ProcessAdaptiveGate"]
