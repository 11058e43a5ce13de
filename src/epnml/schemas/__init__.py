"""Column definitions of the product tables (the source of sql/ and of the RD columns)."""

from epnml.schemas.columns import Column
from epnml.schemas.products import PRODUCTS, Product, get_product

__all__ = ["PRODUCTS", "Column", "Product", "get_product"]
