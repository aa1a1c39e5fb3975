"""backbones.max_pool: amax's values, the whole gradient at the argmax."""

import torch

from backbones.max_pool import max_pool


def test_values_equal_amax_with_and_without_grad():
    x = torch.randn(4, 16, 8, requires_grad=True)
    assert torch.equal(max_pool(x, dim=1), x.amax(dim=1))
    assert torch.equal(max_pool(x, dim=1, keepdim=True), x.amax(dim=1, keepdim=True))
    with torch.no_grad():
        assert torch.equal(max_pool(x, dim=2), x.amax(dim=2))


def test_gradient_goes_to_the_argmax_without_ties_as_amax():
    x = torch.randn(3, 10, 5, requires_grad=True)
    upstream = torch.randn(3, 5)
    (grad,) = torch.autograd.grad(max_pool(x, dim=1), x, upstream)
    (reference,) = torch.autograd.grad(x.amax(dim=1), x, upstream)
    torch.testing.assert_close(grad, reference, rtol=0, atol=0)


def test_ties_give_the_whole_gradient_to_one_entry():
    x = torch.zeros(2, 6, 3, requires_grad=True)  # every entry ties (ReLU zeros)
    upstream = torch.ones(2, 3)
    (grad,) = torch.autograd.grad(max_pool(x, dim=1), x, upstream)
    assert torch.equal(grad.sum(dim=1), upstream)
    assert torch.equal((grad != 0).sum(dim=1), torch.ones(2, 3, dtype=torch.long))
