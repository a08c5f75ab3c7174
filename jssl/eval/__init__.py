"""Evaluation protocols on frozen features: kNN and the linear probe."""

from jssl.eval.knn import knn_predict
from jssl.eval.knn import knn_top1
from jssl.eval.linear import fit_logistic_regression
from jssl.eval.linear import linear_probe

__all__ = ['fit_logistic_regression', 'knn_predict', 'knn_top1', 'linear_probe']
