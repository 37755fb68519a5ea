"""The student model: a Hugging Face backbone + task heads, trained with staged LoRA. Django-free.

Entry points: `StudentConfig` (config.py), `train_student` (train.py), `StudentPredictor` (predict.py).
"""
